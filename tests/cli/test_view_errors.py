"""`report` and `view` refuse an unwritable output, a --db that is no trace database and a port
out of range with one line and exit code 2, never a traceback, and leave no temporary file."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_process import branchpoint, one_line_error
from view import tracedb

# Each test starts the command as a process: not the in-process fast tier.
pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.duckdb"
    tracedb.build(path)
    return path


def _branchpoint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command with its own temporary folder (cwd/tmp), so a leftover copy shows."""
    temp = cwd / "tmp"
    temp.mkdir(exist_ok=True)
    return branchpoint(*args, cwd=cwd, tmpdir=temp)


def _leftovers(*folders: Path) -> list[Path]:
    """Report temp files beside the output and snapshot copies in the command's TMPDIR."""
    found = [p for folder in folders for p in folder.glob(".report-*")]
    temp = folders[0] / "tmp"
    return found + (list(temp.iterdir()) if temp.exists() else [])


def test_report_to_a_directory_is_one_line(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    line = one_line_error(
        _branchpoint("report", "run-root", "-o", str(out), "--db", str(db), cwd=tmp_path),
        f"{out} is a directory",
        "-o",
    )
    assert "report.html" in line
    assert _leftovers(tmp_path, out) == [] and list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("output", "names"),
    [
        ("/proc/version", ("cannot write the report to /proc/version", "-o")),
        ("/proc/branchpoint/r.html", ("cannot write the report", "-o")),
        ("traces.duckdb/r.html", ("traces.duckdb is a file, not a folder", "-o")),
    ],
)
def test_report_to_an_unwritable_path_is_one_line(
    output: str, names: tuple[str, ...], db: Path, tmp_path: Path
) -> None:
    one_line_error(
        _branchpoint("report", "run-root", "-o", output, "--db", str(db), cwd=tmp_path), *names
    )
    assert _leftovers(tmp_path) == []


def _not_a_database(kind: str, folder: Path, db: Path) -> Path:
    path = folder / f"{kind}.duckdb"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.touch()
    elif kind == "sqlite":
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (x)")
    elif kind == "damaged":  # a DuckDB file cut short
        path.write_bytes(db.read_bytes()[:20_000])
    elif kind == "foreign":  # a DuckDB file some other program made
        import duckdb

        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE t (x INTEGER)")
    return path


KINDS = {
    "directory": "it is a folder",
    "text": "its header is not DuckDB's",
    "empty": "it is empty",
    "sqlite": "it is a SQLite file",
    "damaged": "IO Error",
    "foreign": "without branchpoint's tables",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_report_on_a_file_that_is_no_trace_database_is_one_line(
    kind: str, db: Path, tmp_path: Path
) -> None:
    bad = _not_a_database(kind, tmp_path, db)
    line = one_line_error(
        _branchpoint("report", "run-root", "-o", "r.html", "--db", bad.name, cwd=tmp_path),
        f"{bad.name} is not a branchpoint trace database (",
        KINDS[kind],
        "--db",
    )
    assert "kept changing" not in line and "branchpoint-view-" not in line
    assert not (tmp_path / "r.html").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["text", "directory", "foreign"])
def test_view_refuses_a_file_that_is_no_trace_database_before_serving(
    kind: str, db: Path, tmp_path: Path
) -> None:
    bad = _not_a_database(kind, tmp_path, db)
    result = _branchpoint("view", "--port", "0", "--db", bad.name, cwd=tmp_path)
    one_line_error(result, f"{bad.name} is not a branchpoint trace database", "--db")
    assert result.stdout == ""  # no URL: nothing was served
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_view_refuses_a_port_out_of_range(port: str, db: Path, tmp_path: Path) -> None:
    result = _branchpoint("view", "--port", port, "--db", str(db), cwd=tmp_path)
    one_line_error(result, "--port")
    assert _leftovers(tmp_path) == []
