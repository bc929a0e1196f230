"""`branchpoint export` on bad input: one line, exit code 2, no traceback, and nothing written
(no partial Parquet folder, no empty span file, no `.part` file), nothing fetched online."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pytest
from cli_process import branchpoint, one_line_error

from branchpoint.telemetry.export import EXPORT_TABLES

# Each test starts the command as a process: not the in-process fast tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace database with one simulated run, made by the CLI as a user would."""
    folder = tmp_path_factory.mktemp("recorded")
    db = folder / "a.duckdb"
    done = branchpoint("run", "--team", "math", "--model", "sim", "--limit", "1",
                       "--in-process", "--db", str(db))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return db


@pytest.fixture
def db(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "a.duckdb"
    shutil.copy(recorded, copy)
    return copy


def export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return branchpoint("export", *args, cwd=tmp_path)


def test_parquet_writes_nothing_when_one_table_file_is_taken(db: Path, tmp_path: Path) -> None:
    (tmp_path / "half" / "llm_records.parquet" / "sub").mkdir(parents=True)
    result = export(tmp_path, "--parquet", "half", "--db", str(db))
    one_line_error(result, "half/llm_records.parquet", "move it away")
    assert [p.name for p in (tmp_path / "half").iterdir()] == ["llm_records.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "half"]


def test_parquet_leaves_no_folder_when_a_table_fails_midway(db: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute(f"DROP TABLE {EXPORT_TABLES[-1]}")
    con.close()
    result = export(tmp_path, "--parquet", "new/deep/out", "--db", str(db))
    one_line_error(result, "is not a branchpoint trace database", EXPORT_TABLES[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb"]


def test_parquet_into_an_existing_folder_keeps_its_other_files(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = export(tmp_path, "--parquet", "out", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", *(f"{t}.parquet" for t in EXPORT_TABLES)]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "out"]


def test_parquet_to_a_path_with_a_quote(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "it's"
    result = export(tmp_path, "--parquet", str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    spans = duckdb.connect().execute(
        "SELECT count(*) FROM read_parquet(?)", [str(out / "spans.parquet")]
    )
    assert spans.fetchall()[0][0] > 0
    assert len(list(out.iterdir())) == len(EXPORT_TABLES)


def _damaged(path: Path, source: Path) -> None:
    data = bytearray(source.read_bytes())
    data[12288 : 12288 + 256 * 1024] = bytes(range(256)) * 1024
    path.write_bytes(bytes(data))


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()


@pytest.mark.parametrize(
    ("kind", "why"),
    [("damaged", "Corrupt database file"), ("text", "its header is not DuckDB's"),
     ("empty", "it is empty"), ("folder", "it is a folder"), ("sqlite", "it is a SQLite file")],
)  # fmt: skip
@pytest.mark.parametrize("target", ["--parquet", "--otlp-file", "--rationales"])
def test_a_file_that_is_not_a_trace_database(
    kind: str, why: str, target: str, recorded: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.db"
    if kind == "damaged":
        _damaged(bad, recorded)
    elif kind == "text":
        bad.write_text("hello\n")
    elif kind == "empty":
        bad.touch()
    elif kind == "folder":
        bad.mkdir()
    else:
        _sqlite(bad)
    result = export(tmp_path, target, "new/out", "--db", str(bad))
    line = one_line_error(result, "bad.db is not a branchpoint trace database", why)
    assert "locked" not in line and "--where" not in line and "extension" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


@pytest.mark.parametrize("target", [("--otlp", "http://127.0.0.1:1"), ("--otlp-file", "f.jsonl")])
def test_an_unknown_run_id_is_refused(target: tuple[str, str], db: Path, tmp_path: Path) -> None:
    result = export(tmp_path, *target, "--run-id", "nope", "--db", str(db))
    one_line_error(result, "no run nope in", 'SELECT run_id FROM runs"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [(("--parquet", "out", "--run-id", "nope"), "--run-id"),
     (("--rationales", "r.jsonl", "--run-id", "nope"), "--run-id"),
     (("--otlp-file", "f.jsonl", "--where", "x"), "--where"),
     (("--parquet", "out", "--rationales", "r.jsonl", "--where", "x"), "--where")],
)  # fmt: skip
def test_a_flag_that_does_not_apply_is_refused(
    args: tuple[str, ...], flag: str, db: Path, tmp_path: Path
) -> None:
    result = export(tmp_path, *args, "--db", str(db))
    assert one_line_error(result).startswith(f"error: {flag} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb"]


def test_otlp_with_nothing_listening_is_one_line(db: Path, tmp_path: Path) -> None:
    result = export(tmp_path, "--otlp", "http://127.0.0.1:1", "--db", str(db))
    one_line_error(result, "http://127.0.0.1:1/v1/traces", "refused or did not answer")
    assert result.stdout.strip() == ""


def test_otlp_needs_an_http_url(db: Path, tmp_path: Path) -> None:
    result = export(tmp_path, "--otlp", "notaurl", "--db", str(db))
    one_line_error(result, "--otlp notaurl is not an http(s) URL")


@pytest.mark.parametrize("target", ["--rationales", "--otlp-file"])
def test_a_folder_as_the_output_file(target: str, db: Path, tmp_path: Path) -> None:
    (tmp_path / "somedir").mkdir()
    result = export(tmp_path, target, str(tmp_path / "somedir"), "--db", str(db))
    one_line_error(result, "somedir (it is a folder)", "give a file path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "somedir"]
    assert list((tmp_path / "somedir").iterdir()) == []


def test_exports_that_work_exit_0(db: Path, tmp_path: Path) -> None:
    run_id = (
        duckdb.connect(str(db), read_only=True)
        .execute("SELECT run_id FROM runs LIMIT 1")
        .fetchall()[0][0]
    )
    result = export(tmp_path, "--otlp-file", "f.jsonl", "--run-id", run_id, "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f.jsonl").stat().st_size > 0
    result = export(tmp_path, "--rationales", "r.jsonl", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.duckdb", "f.jsonl", "r.jsonl"]
