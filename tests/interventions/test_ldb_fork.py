"""`runtime_trace` and per-agent `swap_model` forks on the sim team (real Ray, LangGraph, DuckDB)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.errors import InvalidInterventionError
from branchpoint.model import Fault, Resample, RuntimeTrace, SwapModel, Task
from branchpoint.orchestrator.fork import check_fits, fork_run, parse_intervention
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

pytestmark = pytest.mark.ray

TASK = Task(
    task_id="t-wage",
    question="Leo earns $15 per hour for 8 hours a day over 5 days and spends $200. What is left?",
    answer="400",
    solution="15*8=<<15*8=120>>120\n120*5=<<120*5=600>>600\n600-200=<<600-200=400>>400\n#### 400",
)
FAULT = Fault(agent="Solver", step=2, kind="wrong_operand")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    db = tmp_path_factory.mktemp("ldb-fork") / "traces.duckdb"
    with Session(Settings(db_path=db)) as s:
        yield s


def test_a_runtime_trace_reaches_the_agent_and_is_json(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=1, faults=[FAULT])
    trace = RuntimeTrace(step=FAULT.step, trace="Block 1: total = 600, WRONG: uses 5 days twice")
    assert parse_intervention(trace.model_dump_json()) == trace
    fixed = fork_run(session, faulty.run_id, trace, repeats=2)
    controls = fork_run(session, faulty.run_id, Resample(step=FAULT.step), repeats=2)
    # The sim's Solver, like an instruct, follows a directive at its fault step.
    assert [r.status for r in fixed] == ["succeeded"] * 2
    assert [r.status for r in controls] == ["failed"] * 2


def test_swap_model_for_one_agent_leaves_the_rest_of_the_team(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=2, faults=[FAULT])
    swap = SwapModel(step=FAULT.step, model="sim:0.01", agent="Solver")
    (fork,) = fork_run(session, faulty.run_id, swap, repeats=1)
    assert fork.model == "sim"  # the run's model is unchanged; only the Solver's turns swapped
    session.flush()
    calls = session.store.query(
        "SELECT step, agent, model FROM llm_calls WHERE run_id = ? ORDER BY step", [fork.run_id]
    )
    after = [(c["agent"], c["model"]) for c in calls if c["step"] >= FAULT.step]
    assert ("Solver", "sim:0.01") in after
    assert all(model == ("sim:0.01" if agent == "Solver" else "sim") for agent, model in after)


def test_runtime_trace_needs_a_model_turn(session: Session) -> None:
    faulty = run_task(session, MATH, TASK, "sim", seed=3, faults=[FAULT])
    session.flush()
    tool_solver = tuple(replace(a, prompt=None) if a.name == "Solver" else a for a in MATH.agents)
    with pytest.raises(InvalidInterventionError, match="calls no model"):
        check_fits(
            RuntimeTrace(step=FAULT.step, trace="x"),
            load_steps(session.store, faulty),
            replace(MATH, agents=tool_solver),
        )
