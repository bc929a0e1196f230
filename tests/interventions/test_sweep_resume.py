"""A sweep driver SIGKILLed part way resumes with `--resume`: every planned fork gets exactly one outcome.

The driver starts its own local Ray, so killing its process group must also end that Ray and
release the DuckDB file its sink actor held; a second `--resume` of the finished sweep runs no fork.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest
from shared_data import needs_shared_data

pytestmark = [pytest.mark.ray, pytest.mark.slow, needs_shared_data]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_test_first200.jsonl"
CLI = str(Path(sys.executable).with_name("branchpoint"))
CLI_TIMEOUT_S = 240
FORKS_BEFORE_KILL = 4


def cli(*args: str, db: Path, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run a `branchpoint` command to completion; fail the test with its output if it fails."""
    done = subprocess.run(
        [CLI, *args, "--db", str(db)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    assert done.returncode == 0, (
        f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def finished_forks(messages_db: Path) -> int:
    """Sweep forks whose final step the driver has stored (read from its SQLite message store)."""
    try:
        with sqlite3.connect(f"file:{messages_db}?mode=ro", uri=True, timeout=1) as con:
            row = con.execute(
                "SELECT count(DISTINCT json_extract(step_json, '$.run_id')) FROM messages "
                "WHERE json_extract(step_json, '$.run_id') LIKE 'item-%' "
                "AND json_extract(step_json, '$.kind') = 'final'"
            ).fetchone()
    except sqlite3.OperationalError:  # not created yet, or a writer holds a lock this instant
        return 0
    return int(row[0])


def ray_tree(pid: int) -> list[psutil.Process]:
    """The driver and every process it started (its local Ray: GCS, raylet, workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive after `timeout` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def open_when_released(db: Path, timeout: float = 60) -> duckdb.DuckDBPyConnection:
    """A read-write connection, once no process holds the file's lock any more."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(db))
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def outcome_counts(con: duckdb.DuckDBPyConnection, sweep_id: str) -> dict[str, int]:
    """Outcome rows per sweep item (a fork id is `<item id>.<suffix>`)."""
    rows = con.execute(
        "SELECT split_part(fork_run_id, '.', 1), count(*) FROM outcomes WHERE sweep_id = ? "
        "GROUP BY 1",
        [sweep_id],
    ).fetchall()
    return {item: n for item, n in rows}


def fork_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Fork runs recorded so far (run spans with a parent)."""
    return int(
        con.execute("SELECT count(*) FROM runs WHERE parent_run_id IS NOT NULL").fetchone()[0]
    )


@pytest.mark.timeout(600)
def test_killed_sweep_resumes_with_exactly_one_outcome_per_item(tmp_path: Path) -> None:
    db = tmp_path / "sweep.duckdb"
    cli(
        "run",
        "--model",
        "sim:0.2",
        "--tasks",
        str(DATA),
        "--limit",
        "5",
        "--fault-rate",
        "1.0",
        "--concurrency",
        "4",
        db=db,
    )
    with duckdb.connect(str(db), read_only=True) as con:
        failed = con.execute("SELECT count(*) FROM runs WHERE status = 'failed'").fetchone()[0]
    assert failed >= 2, "the seeded sim runs should give at least two failed runs"

    driver = subprocess.Popen(
        [
            CLI,
            "sweep",
            "--where",
            "status = 'failed'",
            "--methods",
            "value_curve,ground_truth",
            "--curve-repeats",
            "2",
            "--repeats",
            "2",
            "--concurrency",
            "4",
            "--db",
            str(db),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while finished_forks(db.with_suffix(".messages.sqlite")) < FORKS_BEFORE_KILL:
            assert driver.poll() is None, (
                f"the sweep exited ({driver.returncode}) before it could be killed"
            )
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.5)
        time.sleep(1.0)  # let the finished forks' outcomes reach the sink
        tree = ray_tree(driver.pid)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        left = wait_gone(tree, timeout=60)
        assert not left, f"the killed driver's Ray outlived it: {[(p.pid, p.name()) for p in left]}"
    finally:
        for proc in wait_gone(tree, timeout=0):
            proc.kill()
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)

    with open_when_released(db) as con:
        (sweep_id,) = con.execute("SELECT sweep_id FROM sweeps").fetchone()
        before = sum(outcome_counts(con, sweep_id).values())

    cli("sweep", "--resume", sweep_id, db=db)
    with duckdb.connect(str(db), read_only=True) as con:
        planned = {
            r[0]
            for r in con.execute(
                "SELECT item_id FROM sweep_items WHERE sweep_id = ?", [sweep_id]
            ).fetchall()
        }
        counts = outcome_counts(con, sweep_id)
        forks_after = fork_runs(con)
    assert 0 < before < len(planned), (
        f"the kill should fall part way: {before} of {len(planned)} outcomes"
    )
    assert set(counts) == planned, "every planned item has an outcome, and no outcome lacks an item"
    assert {n for n in counts.values()} == {1}, (
        f"items with two outcomes: {[i for i, n in counts.items() if n > 1]}"
    )

    started = time.perf_counter()
    cli("sweep", "--resume", sweep_id, db=db)
    second = time.perf_counter() - started
    with duckdb.connect(str(db), read_only=True) as con:
        assert outcome_counts(con, sweep_id) == counts
        assert fork_runs(con) == forks_after, "a resume of a finished sweep must run no fork"
    status = cli("sweep", "status", sweep_id, db=db).stdout
    assert "finished" in status and f"{len(planned)} " in status
    print(f"outcomes before kill {before}/{len(planned)}; second resume {second:.1f} s")
