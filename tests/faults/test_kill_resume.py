"""A SIGKILLed `run`, then `run --resume`: every task has one finished run, no orphan steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_test_first200.jsonl"
TASKS = 40  # ~20 s of work at concurrency 4 on an idle machine: the kill lands mid-way

pytestmark = pytest.mark.ray


def run_command(db: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "branchpoint", "run", "--team", "math", "--model", "sim:0.3"]
    return command + ["--tasks", str(GSM8K), "--limit", str(TASKS), "--db", str(db), *extra]


def kill_when_steps_run(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the CLI soon after its agent hosts started taking steps."""
    cli = psutil.Process(proc.pid)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        names = []
        for child in cli.children(recursive=True):
            try:
                names.append(child.cmdline()[0] if child.cmdline() else "")
            except psutil.Error:
                continue
        if any(n.startswith("ray::AgentHost.run_step") for n in names):
            time.sleep(1.5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.2)
    raise AssertionError(f"the run never started a step (exit code {proc.poll()})")


def wait_until_released(db: Path) -> None:
    """The killed CLI's Ray processes die with it; the file is free once they are gone."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            duckdb.connect(str(db), read_only=True).close()
            return
        except duckdb.Error:
            time.sleep(0.5)
    raise AssertionError("the trace database stayed locked after the CLI was killed")


def test_resume_after_sigkill_has_no_duplicates_and_no_orphans(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    kill_when_steps_run(subprocess.Popen(run_command(db, "--concurrency", "4")))
    wait_until_released(db)
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert before < TASKS  # killed mid-way
    resumed = subprocess.run(
        run_command(db, "--resume"), capture_output=True, text=True, timeout=600, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        per_task = con.execute("SELECT task_id, count(*) FROM runs GROUP BY task_id").fetchall()
        orphans = con.execute(
            "SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()[0]
        statuses = {r[0] for r in con.execute("SELECT status FROM runs").fetchall()}
    assert len(per_task) == TASKS and all(n == 1 for _, n in per_task), per_task
    assert orphans == 0
    assert statuses <= {"succeeded", "failed"}
