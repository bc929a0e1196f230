"""The public API (`import branchpoint as bp`) in the in-process mode: what a notebook user sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import branchpoint as bp
from branchpoint.errors import ReadOnlyQueryError, UnknownRunError

FAULTY = bp.Task(
    task_id="t-eggs",
    question="Janet's ducks lay 16 eggs a day; she eats 3 and bakes with 4, and sells the rest "
    "at $2 each. How many dollars does she make a day?",
    answer="18",
    solution="16-3-4=<<16-3-4=9>>9\n9*2=<<9*2=18>>18\n#### 18",
)


def test_importing_branchpoint_loads_no_heavy_library() -> None:
    code = (
        "import sys, branchpoint as bp; "
        "heavy = [m for m in ('ray', 'langgraph', 'duckdb', 'autogen_agentchat') if m in sys.modules]; "
        "print(heavy, len(bp.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("]")[0] == "[", out.stdout


def test_every_public_name_resolves_and_nothing_else_is_public() -> None:
    for name in bp.__all__:
        assert getattr(bp, name) is not None, name
    with pytest.raises(AttributeError):
        _ = bp.fork_run  # type: ignore[attr-defined]  # internal: not re-exported


def test_intervention_constructors_make_the_model_types() -> None:
    assert bp.instruct(2, "Check.") == bp.Instruct(step=2, instruction="Check.")
    assert bp.replace_message(1, "x").kind == "replace_message"
    assert bp.replace_plan(0, plan="1. a").plan == "1. a"
    assert bp.resample(3) == bp.Resample(step=3)
    assert bp.swap_model(1, "sim").model == "sim"


def test_run_fork_replay_debug_and_sql_in_process() -> None:
    with bp.session(db=":memory:", model="sim") as s:
        [run] = bp.run([FAULTY], fault_rate=1.0, seed=3)
        assert run.status == "failed" and run.faults
        fault = run.faults[0]
        forks = bp.fork(run, bp.instruct(fault.step, "Re-check the operands."), repeats=2)
        assert [f.parent_run_id for f in forks] == [run.run_id] * 2
        assert bp.replay(run).identical
        result = bp.debug(run, methods=["ground_truth"], repeats=2)
        [test] = result.reports[0].tests
        assert (test.hypothesis.step, test.verdict.label) == (fault.step, "validated")
        rows = bp.sql("SELECT run_id FROM forks WHERE parent_run_id = ?", [run.run_id])
        assert {r["run_id"] for r in rows} >= {f.run_id for f in forks}
        table = s.sql(
            "SELECT step, agent FROM steps WHERE run_id = ?", [run.run_id], format="arrow"
        )
        assert isinstance(table, pa.Table) and table.num_rows == run.n_steps
        assert [st.index for st in s.steps(run)] == list(range(run.n_steps))


def test_an_agent_turn_that_raises_ends_its_run_as_errored_and_the_others_still_run() -> None:
    from branchpoint.agents.teams import MATH
    from branchpoint.orchestrator.runner import run_tasks

    # The sim cannot evaluate "27(1/3)" (`bp.run` leaves such tasks out; this calls the runner
    # directly): its Solver raises, as a team's own code may.
    broken = bp.Task(task_id="t-broken", question="?", answer="9", solution="<<27(1/3)=9>>9")
    unary = bp.Task(task_id="t-unary", question="?", answer="8", solution="<<+8=8>>8\n#### 8")
    with bp.session(db=":memory:", model="sim") as s:
        runs = run_tasks(s.core, MATH, [broken, unary, FAULTY], "sim")
        status = {r["task_id"]: r["status"] for r in s.sql("SELECT task_id, status FROM runs")}
    assert [r.status for r in runs] == ["errored", "succeeded", "succeeded"]
    assert runs[0].error == "ValueError: not arithmetic: 27(1/3)"
    assert status == {"t-broken": "errored", "t-unary": "succeeded", "t-eggs": "succeeded"}


def test_user_errors_are_branchpoint_errors() -> None:
    with pytest.raises(bp.BranchpointError, match="no open session"):
        bp.run("builtin")
    with bp.session(db=":memory:") as s:
        with pytest.raises(UnknownRunError):
            s.fork("run-nope", bp.resample(0))
        with pytest.raises(ReadOnlyQueryError):
            s.sql("DELETE FROM spans")
        with pytest.raises(bp.BranchpointError, match="unknown method"):
            s.debug("run-nope", methods=["astrology"])


def test_sql_without_a_session_reads_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    with bp.session(db=db, model="sim") as s:
        s.run([FAULTY], fault_rate=0.0)
    assert bp.sql("SELECT status FROM runs", db=db) == [{"status": "succeeded"}]


def _persisted(seed: int) -> tuple[list[str], list[tuple[str, str]], list[float]]:
    with bp.session(db=":memory:", model="sim", ids=bp.SeededIds(seed), clock=bp.TickClock()) as s:
        runs = s.run([FAULTY], fault_rate=1.0, concurrency=1)
        runs += s.fork(runs[0], bp.resample(1))
        spans = s.sql("SELECT span_id, trace_id FROM spans ORDER BY span_id")
    return (
        [r.run_id for r in runs],
        [(r["span_id"], r["trace_id"]) for r in spans],
        [r.seconds for r in runs],
    )


def test_seeded_ids_and_a_tick_clock_make_ids_and_durations_reproducible() -> None:
    first, second, other = _persisted(1), _persisted(1), _persisted(2)
    assert first == second
    assert first[0] != other[0] and first[1] != other[1]
    assert first[2] == [1.0, 1.0]  # one tick between a run's start and end, not wall time


def test_a_run_checks_its_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan_runs` checks the model before anything starts; running its plan does not ask again
    (for an `openai:` model every check is a request to the endpoint). A plan made by hand is
    checked when it runs."""
    from branchpoint.orchestrator import runner

    checked: list[str] = []
    check = runner.preflight_model
    monkeypatch.setattr(
        runner, "preflight_model", lambda model, *a: (checked.append(model), check(model, *a))
    )
    with bp.session(":memory:", model="sim") as s:
        s.run(FAULTY, fault_rate=0.0)
        assert checked == ["sim"]
        plan = bp.plan_runs(FAULTY, model="sim", fault_rate=0.0)
        by_hand = bp.RunPlan(plan.team, plan.model, plan.seed, plan.tasks, plan.faults)
        s.run_plan(by_hand)
        assert checked == ["sim", "sim", "sim"]  # plan_runs once, the hand-made plan once


def test_in_process_agents_and_driver_share_one_span_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, the agents' spans join the driver's batches: one store write per flush (each
    write costs a DuckDB commit), and each side still names its own service."""
    from branchpoint.telemetry.store import DuckDBTraceStore

    writes: list[int] = []
    original = DuckDBTraceStore.write_spans

    def counted(self: DuckDBTraceStore, rows: object) -> int:
        writes.append(1)
        return original(self, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(DuckDBTraceStore, "write_spans", counted)
    with bp.session(db=tmp_path / "t.duckdb", model="sim") as s:
        for _ in range(3):
            bp.run([FAULTY])
        assert len(writes) == 3
        rows = s.sql(
            "SELECT DISTINCT kind, resource->>'$.\"service.name\"' AS service FROM spans "
            "WHERE kind IN ('run', 'chat') ORDER BY kind"
        )
    assert [(r["kind"], r["service"]) for r in rows] == [
        ("chat", "branchpoint-agent-host"),
        ("run", "branchpoint-driver"),
    ]
