"""A killed AgentHost worker mid-run: every run still finishes, none errored because of it."""

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

pytestmark = pytest.mark.ray


def agent_host_workers(cli: psutil.Process) -> list[psutil.Process]:
    """The AgentHost actor processes of the Ray cluster this CLI started."""
    found = []
    for child in cli.children(recursive=True):
        try:
            if child.cmdline() and child.cmdline()[0].startswith("ray::AgentHost"):
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_for_busy_hosts(cli: psutil.Process, proc: subprocess.Popen[str]) -> list[psutil.Process]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        hosts = agent_host_workers(cli)
        if len(hosts) >= 2 and any(h.cmdline()[0].endswith("run_step") for h in hosts):
            return hosts
        time.sleep(0.2)
    raise AssertionError(f"no busy AgentHost worker appeared (exit code {proc.poll()})")


def test_a_killed_host_costs_no_run(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    command = [sys.executable, "-m", "branchpoint", "run", "--team", "math", "--model", "sim:0.5"]
    command += ["--tasks", str(GSM8K), "--limit", "20", "--concurrency", "4", "--db", str(db)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = psutil.Process(proc.pid)
    hosts = wait_for_busy_hosts(cli, proc)
    time.sleep(2.0)  # several steps in flight on every host
    victim = next(h for h in hosts if h.cmdline()[0].endswith("run_step"))
    os.kill(victim.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "summary" in stdout and "Traceback" not in stderr
    with duckdb.connect(str(db), read_only=True) as con:
        statuses = con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        errors = con.execute("SELECT error FROM runs WHERE status = 'errored'").fetchall()
    assert sum(n for _, n in statuses) == 20
    assert errors == [], errors
    assert not victim.is_running()
