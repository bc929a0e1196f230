"""Imported logs beside real `sim` runs (in-process session: the sweep code is the one Ray runs):
debugging skips them, forks refuse them, and the sim runs' validated fixes export as rationales;
a sim run round-trips through OTLP JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.errors import NotReplayableError
from branchpoint.importers import import_path
from branchpoint.interventions.rationales import Rationale, export_rationales
from branchpoint.interventions.sweep import SweepSpec, create_sweep, execute_sweep
from branchpoint.model import Fault, Resample, Task
from branchpoint.orchestrator.fork import fork_run
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings
from branchpoint.telemetry.export import export_otlp_file
from branchpoint.telemetry.store import DuckDBTraceStore

WHOWHEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "whowhen_samples"
TASK = Task(
    task_id="t-wage",
    question="Leo earns $15 per hour for 8 hours a day over 5 days and spends $200. What is left?",
    answer="400",
    solution="15*8=<<15*8=120>>120\n120*5=<<120*5=600>>600\n600-200=<<600-200=400>>400\n#### 400",
)
FAULT = Fault(agent="Solver", step=2, kind="wrong_operand")
STEPS_SQL = "SELECT step, agent, kind, content FROM steps WHERE run_id = ? ORDER BY step"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    db = tmp_path_factory.mktemp("foreign") / "traces.duckdb"
    with Session(Settings(db_path=db), ray=False) as s:
        yield s


def test_debug_failed_debugs_sim_runs_and_skips_imported_ones(
    session: Session, tmp_path: Path
) -> None:
    failed = run_task(session, MATH, TASK, "sim", seed=3, faults=[FAULT])
    assert failed.status == "failed"
    imported = import_path(session.store, "whowhen", WHOWHEN).imported
    assert len(imported) == 10
    session.flush()

    spec = SweepSpec(where="status = 'failed'", methods=("ground_truth",), repeats=3)
    skipped: list[tuple[str, str]] = []
    reports = execute_sweep(
        session, create_sweep(session.store, spec), spec, None, 4,
        on_skip=lambda run_id, why: skipped.append((run_id, why)),
    )  # fmt: skip
    assert [r.run.run_id for r in reports] == [failed.run_id]
    assert sorted(run_id for run_id, _ in skipped) == sorted(imported)
    assert all("cannot be forked, replayed or debugged" in why for _, why in skipped)
    [test] = reports[0].tests
    assert (test.hypothesis.step, test.verdict.label) == (FAULT.step, "validated")

    with pytest.raises(NotReplayableError):
        fork_run(session, imported[0], Resample(step=1))

    out = tmp_path / "rationales.jsonl"
    assert export_rationales(session.store, out) == 1
    [line] = out.read_text().splitlines()
    rationale = Rationale.model_validate_json(line)
    assert rationale.run_id == failed.run_id and rationale.verdict == "validated"
    assert [s.index for s in rationale.failed_steps] == list(range(FAULT.step))
    assert rationale.fork_steps[0].index == FAULT.step and rationale.fork_succeeded
    assert rationale.hypothesis.agent == "Solver" and rationale.intervention.step == FAULT.step
    assert rationale.control_forks == 3 and rationale.control_rate == 0.0
    assert json.loads(line)["schema_version"] == 1
    # a filter that matches no run exports nothing
    assert export_rationales(session.store, tmp_path / "none.jsonl", "task_id = 'x'") == 0


def test_a_sim_run_round_trips_through_an_otlp_file(session: Session, tmp_path: Path) -> None:
    run = run_task(session, MATH, TASK, "sim", seed=4)
    session.flush()
    out = tmp_path / "run.json"
    assert export_otlp_file(session.settings.db_path, out, run_id=run.run_id) > run.n_steps
    target = DuckDBTraceStore(tmp_path / "imported.duckdb")
    assert import_path(target, "otlp", out).imported == [run.run_id]
    assert target.query(STEPS_SQL, [run.run_id]) == session.store.query(STEPS_SQL, [run.run_id])
    [row] = target.query("SELECT status, team, ground_truth, source FROM runs")
    assert (row["status"], row["team"], row["ground_truth"]) == ("succeeded", "math", "400")
    assert row["source"] == f"otlp:{out}"
