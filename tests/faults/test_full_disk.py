"""A full disk mid-run: one error line, exit 1, the old runs intact, `--resume` completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_test_first200.jsonl"

pytestmark = pytest.mark.ray


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted for the test. Mounting needs root (CI runs as root); without it the
    test fails and says so, rather than skipping the one check of a full disk."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("the full-disk test mounts a 24 MB tmpfs: run it as root (CI does)")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def run(db: Path, limit: int, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "branchpoint", "run", "--team", "math", "--model", "sim"]
    command += ["--tasks", str(GSM8K), "--limit", str(limit), "--db", str(db), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def runs_of(db: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()


def test_a_full_disk_fails_in_one_line_keeps_old_runs_and_resume_completes(
    small_disk: Path,
) -> None:
    db = small_disk / "t.duckdb"
    assert run(db, 3).returncode == 0
    old = runs_of(db)
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free - 300 * 1024))  # leave 300 KB

    full = run(db, 20)
    assert full.returncode == 1, full.stdout[-2000:] + full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--resume" in errors[0], full.stderr

    filler.unlink()
    assert set(old) <= set(runs_of(db))  # the runs stored before are intact
    resumed = run(db, 20, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        tasks, rows = con.execute("SELECT count(DISTINCT task_id), count(*) FROM runs").fetchone()
        orphans = con.execute(
            "SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()[0]
    assert tasks == rows == 20 and orphans == 0
