"""The real embedded model end to end: a run, a fork that shares its prefix, and an exact replay."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.model import Resample
from branchpoint.orchestrator.fork import fork_run
from branchpoint.orchestrator.replay import replay_run
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings
from branchpoint.tasks import builtin_tasks

pytestmark = [pytest.mark.local_model, pytest.mark.ray]


def test_local_model_run_fork_at_step_2_and_replay_without_the_model(
    tmp_path: Path, local_gguf: Path
) -> None:
    settings = Settings(db_path=tmp_path / "local.duckdb", max_steps=5, n_hosts=1)
    task = next(t for t in builtin_tasks() if t.task_id == "bi-sum")
    with Session(settings) as session:
        run = run_task(session, MATH, task, "local", seed=3)
        assert run.status in ("succeeded", "failed"), run.error
        session.flush()
        steps = load_steps(session.store, run)
        assert len(steps) >= 3 and steps[0].agent == "Planner"
        calls = session.store.query(
            "SELECT step, count(*) AS n, sum(output_tokens) AS tokens FROM llm_calls "
            "WHERE run_id = ? GROUP BY step ORDER BY step",
            [run.run_id],
        )
        assert [c["step"] for c in calls] == [s.index for s in steps]  # every step called the model
        assert all(c["tokens"] > 0 for c in calls)

        [fork] = fork_run(session, run.run_id, Resample(step=2))
        assert fork.status != "errored", fork.error
        fork_calls = session.store.query(
            "SELECT step FROM llm_calls WHERE run_id = ?", [fork.run_id]
        )
        assert (
            fork_calls and min(c["step"] for c in fork_calls) == 2
        )  # nothing re-run before step 2

    no_model = replace(settings, model_cache=tmp_path / "no-model-here")
    with Session(no_model) as session:
        report = replay_run(session, run.run_id)
        assert report.identical, report.render()
        cached = session.store.query(
            "SELECT bool_and(cached) AS all_cached, count(*) AS n FROM llm_calls WHERE run_id = ?",
            [report.replayed.run_id],
        )[0]
        assert cached["all_cached"] and cached["n"] == len(calls)
