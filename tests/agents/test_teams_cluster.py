"""A user's team, from a package outside branchpoint, on a two-node Ray cluster.

The team (`tests/userteams/pair.py`) is named by import path from the folder that holds it, as a
user runs it from their project. Its runs must run on both nodes (each run keeps one host, and
the second run goes to the other host, on the other node), and a fork started later from
another folder, in a new process, must resolve the same team from what the run recorded (the
import path and its folder) and run the tool on a host that imports it from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from interventions.test_sweep_cluster import Cluster, branchpoint, finish

pytestmark = [pytest.mark.cluster, pytest.mark.ray]
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_nodes() -> Iterator[Cluster]:
    """A head and a worker node on 127.0.0.1, stopped at teardown."""
    running = Cluster()
    try:
        running.start_head()
        running.add_worker()
        yield running
    finally:
        running.stop()


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def run_in(folder: Path, args: list[str], cluster: Cluster) -> str:
    """A `branchpoint` command started in `folder` (its working directory)."""
    import os

    old = Path.cwd()
    os.chdir(folder)
    try:
        return finish(branchpoint(args, cluster.env))
    finally:
        os.chdir(old)


@pytest.mark.timeout(900)
def test_a_user_team_runs_on_both_nodes_and_forks_from_a_new_process(
    two_nodes: Cluster, tmp_path: Path
) -> None:
    db, tasks = tmp_path / "cluster.duckdb", tmp_path / "tasks.jsonl"
    # The team's scripted agents answer 5 to anything.
    questions = [("What is 2 + 3?", "2 + 3 = 5\n#### 5"), ("What is 3 + 2?", "3 + 2 = 5\n#### 5")]
    tasks.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in questions))
    common = ["--address", two_nodes.address, "--db", str(db)]
    run_in(
        TESTS, ["run", "--team", "userteams.pair:TEAM", "--tasks", str(tasks), *common], two_nodes
    )

    runs = rows(db, "SELECT run_id, status, team FROM runs ORDER BY task_id")
    assert [(status, team) for _, status, team in runs] == [("succeeded", "pair")] * 2
    nodes_of_runs = []
    for run_id, _, _ in runs:
        steps = rows(
            db, f"SELECT step, agent, node_id FROM steps WHERE run_id = '{run_id}' ORDER BY step"
        )
        assert [s[1] for s in steps] == ["Adder", "Checker"]
        assert len({s[2] for s in steps}) == 1, f"a run's steps moved between hosts: {steps}"
        nodes_of_runs.append(steps[0][2])
    assert len(set(nodes_of_runs)) == 2, f"both runs ran on one node: {nodes_of_runs}"
    run_id = runs[0][0]
    assert rows(db, f"SELECT tool, output FROM tool_calls WHERE run_id = '{run_id}'") == [
        ("add", "5")
    ]

    elsewhere = tmp_path / "elsewhere"  # neither the driver nor Ray can import userteams from here
    elsewhere.mkdir()
    run_in(elsewhere, ["fork", run_id, "--step", "0", *common], two_nodes)
    [(fork_id, fork_status)] = rows(
        db, f"SELECT run_id, status FROM runs WHERE parent_run_id = '{run_id}'"
    )
    assert fork_status == "succeeded"
    assert rows(db, f"SELECT tool, output FROM tool_calls WHERE run_id = '{fork_id}'") == [
        ("add", "5")
    ]
