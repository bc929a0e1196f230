"""One behaviour suite for both executors: runs, forks, replays and the DoVer pipeline.

Every test runs against an in-process session (agent turns in this process, spans straight to
DuckDB: the fast tier) and against a Ray session (agent turns in `AgentHost` actors, a trace sink
actor: marked `ray`), the way LangGraph's conformance suite runs against each saver. Both use a
real LangGraph SQLite checkpointer, a real DuckDB file and the sim team.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.errors import InvalidInterventionError, StepOutOfRangeError, UnknownRunError
from branchpoint.interventions.pipeline import DebugConfig, debug_run
from branchpoint.interventions.sweep import SweepSpec, create_sweep, execute_sweep, sweep_rows
from branchpoint.model import Fault, Instruct, Outcome, ReplaceMessage, ReplacePlan, Resample, Task
from branchpoint.orchestrator.fork import fork_run, parse_intervention
from branchpoint.orchestrator.replay import replay_run
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

TASK = Task(
    task_id="t-wage",
    question="Leo earns $15 per hour for 8 hours a day over 5 days and spends $200. What is left?",
    answer="400",
    solution="15*8=<<15*8=120>>120\n120*5=<<120*5=600>>600\n600-200=<<600-200=400>>400\n#### 400",
)
FAULT = Fault(agent="Solver", step=2, kind="wrong_operand")


@pytest.fixture(scope="module", params=["in_process", pytest.param("ray", marks=pytest.mark.ray)])
def session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    db = tmp_path_factory.mktemp(f"behaviour-{request.param}") / "traces.duckdb"
    with Session(Settings(db_path=db), ray=request.param == "ray") as s:
        yield s


def test_a_run_records_every_step_with_a_checkpoint_and_spans(session: Session) -> None:
    run = run_task(session, MATH, TASK, "sim", seed=7)
    assert run.status == "succeeded" and run.final_answer == "400"
    session.flush()
    steps = load_steps(session.store, run)
    assert [s.index for s in steps] == list(range(run.n_steps))
    assert steps[0].agent == MATH.first and steps[-1].kind == "final"
    assert all(s.checkpoint_id for s in steps)
    stored = load_run(session.store, run.run_id)
    assert (stored.status, stored.final_answer, stored.n_steps) == ("succeeded", "400", run.n_steps)
    calls = session.store.query(
        "SELECT count(*) AS n FROM llm_calls WHERE run_id = ?", [run.run_id]
    )[0]["n"]
    assert calls == run.n_steps  # one chat span per sim turn, a child of its step


def test_replace_message_fixes_the_injected_fault_and_resample_does_not(session: Session) -> None:
    clean = run_task(session, MATH, TASK, "sim", seed=1)
    faulty = run_task(session, MATH, TASK, "sim", seed=1, faults=[FAULT])
    assert clean.status == "succeeded" and faulty.status == "failed"
    session.flush()
    correct = load_steps(session.store, clean)[FAULT.step].content
    assert load_steps(session.store, faulty)[FAULT.step].content != correct

    fixed = fork_run(
        session, faulty.run_id, ReplaceMessage(step=FAULT.step, content=correct), repeats=3
    )
    controls = fork_run(session, faulty.run_id, Resample(step=FAULT.step), repeats=3)

    assert [r.status for r in fixed] == ["succeeded"] * 3
    assert [r.status for r in controls] == ["failed"] * 3
    forks = session.store.query(
        "SELECT run_id, parent_run_id, fork_step, intervention_id FROM forks WHERE parent_run_id = ?",
        [faulty.run_id],
    )
    assert len(forks) == 6
    assert {f["fork_step"] for f in forks} == {FAULT.step}
    assert {f["run_id"] for f in forks} == {r.run_id for r in fixed + controls}


def test_fork_shares_the_prefix_and_makes_no_llm_call_before_the_fork_step(
    session: Session,
) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=2, faults=[FAULT])
    [fork] = fork_run(
        session, faulty.run_id, Instruct(step=FAULT.step, instruction="Re-check the operands.")
    )
    assert fork.status == "succeeded"
    calls = session.store.query(
        "SELECT step, count(*) AS n FROM llm_calls WHERE run_id = ? GROUP BY step", [fork.run_id]
    )
    assert calls and min(c["step"] for c in calls) == FAULT.step
    parent_steps = load_steps(session.store, faulty)
    fork_steps = load_steps(session.store, load_run(session.store, fork.run_id))
    assert [s.content for s in fork_steps[: FAULT.step]] == [
        s.content for s in parent_steps[: FAULT.step]
    ]
    assert fork_steps[FAULT.step].content.startswith("(Re-checked as instructed.)")


def test_replace_plan_at_the_plan_step_replaces_the_plan(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=8, faults=[FAULT])
    plan = "1. Compute 15*8.\n2. Compute 120*5.\n3. Compute 600-200."
    [fork] = fork_run(session, faulty.run_id, ReplacePlan(step=0, plan=plan))
    steps = load_steps(session.store, load_run(session.store, fork.run_id))
    assert steps[0].kind == "plan" and plan in steps[0].content


def test_fork_at_step_zero_and_fork_of_a_fork(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=3, faults=[FAULT])
    [first] = fork_run(session, faulty.run_id, Resample(step=0))
    assert first.status == "failed"  # the seeded fault recurs
    [second] = fork_run(
        session, first.run_id, Instruct(step=FAULT.step, instruction="Check the operands.")
    )
    assert second.status == "succeeded"
    steps = load_steps(session.store, load_run(session.store, second.run_id))
    assert [s.index for s in steps] == list(range(len(steps)))


def test_bad_fork_requests_are_clear_errors(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=4, faults=[FAULT])
    with pytest.raises(UnknownRunError):
        fork_run(session, "run-does-not-exist", Resample(step=0))
    with pytest.raises(StepOutOfRangeError):
        fork_run(session, faulty.run_id, Resample(step=99))
    with pytest.raises(InvalidInterventionError):
        parse_intervention("{not json")
    with pytest.raises(InvalidInterventionError):
        parse_intervention(json.dumps({"kind": "replace_message", "step": 1}))  # no content
    with pytest.raises(InvalidInterventionError):
        parse_intervention(json.dumps({"kind": "teleport", "step": 1}))


def test_replay_reproduces_a_sim_run_from_the_record_store(session: Session) -> None:
    original = run_task(session, MATH, TASK, "sim", seed=5, faults=[FAULT])
    report = replay_run(session, original.run_id)
    assert report.identical, report.render()
    replayed = session.store.query(
        "SELECT count(*) AS n, bool_and(cached) AS all_cached FROM llm_calls WHERE run_id = ?",
        [report.replayed.run_id],
    )[0]
    assert replayed["n"] == original.n_steps and replayed["all_cached"]


def test_the_pipeline_validates_the_injected_fault_against_its_controls(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=6, faults=[FAULT])
    config = DebugConfig(methods=("ground_truth", "value_curve"), repeats=2, curve_repeats=2)
    report = debug_run(session, faulty.run_id, config)
    [truth] = [t for t in report.tests if t.hypothesis.method == "ground_truth"]
    assert (truth.hypothesis.agent, truth.hypothesis.step) == (FAULT.agent, FAULT.step)
    assert truth.verdict.label == "validated"
    assert [o.success for o in truth.outcomes] == [True, True]
    assert [o.success for o in truth.controls] == [False, False]  # resample: the fault recurs
    assert report.curve and report.curve[len(report.steps) - 1] == 0.0
    assert all(f.kind == "no_hypothesis" for f in report.failures)
    stored = session.store.query(
        "SELECT label FROM verdicts WHERE run_id = ? AND hypothesis_id = ?",
        [faulty.run_id, truth.hypothesis.hypothesis_id],
    )
    assert stored == [{"label": "validated"}]


def test_a_sweep_resumed_after_it_finished_runs_no_fork(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=9, faults=[FAULT])
    spec = SweepSpec(run_ids=(faulty.run_id,), methods=("ground_truth",), repeats=2)
    sweep_id = create_sweep(session.store, spec, session.ids, session.clock)
    started: list[Outcome | None] = []

    def on_fork(outcome: Outcome | None) -> None:
        if outcome is None:
            started.append(outcome)

    execute_sweep(session, sweep_id, spec, None, concurrency=4, on_fork=on_fork)
    assert len(started) == 4  # 2 instruct forks + 2 resample controls
    [row] = sweep_rows(session.store, sweep_id)
    assert (row["planned"], row["done"], row["status"]) == (4, 4, "finished")
    started.clear()
    [again] = execute_sweep(session, sweep_id, spec, None, concurrency=4, on_fork=on_fork)
    assert started == [] and again.tests[0].verdict.label == "validated"


def test_checkpoint_storage_is_linear_in_run_length(session: Session) -> None:
    def chain(n: int) -> Task:
        lines = "\n".join(f"{i}+1=<<{i}+1={i + 1}>>{i + 1}" for i in range(n))
        return Task(task_id=f"chain-{n}", question=f"Count to {n}", answer=str(n), solution=lines)

    def bytes_of(run_id: str) -> int:
        with sqlite3.connect(session.settings.checkpoint_path) as con:
            row = con.execute(
                "SELECT sum(length(checkpoint)) + sum(length(metadata)) FROM checkpoints "
                "WHERE thread_id = ?",
                (run_id,),
            ).fetchone()
            writes = con.execute(
                "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?", (run_id,)
            ).fetchone()
        return int(row[0]) + int(writes[0])

    old = session.settings.max_steps
    object.__setattr__(session.settings, "max_steps", 1000)
    try:
        short = run_task(session, MATH, chain(20), "sim")
        long = run_task(session, MATH, chain(40), "sim")
    finally:
        object.__setattr__(session.settings, "max_steps", old)
    assert short.status == long.status == "succeeded"
    ratio = bytes_of(long.run_id) / bytes_of(short.run_id)
    assert ratio <= 2.2, ratio
