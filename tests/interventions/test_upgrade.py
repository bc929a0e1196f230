"""The model-upgrade attribution: which agent's model is worth upgrading, from executed forks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shared_data import SHARED_DATA, needs_shared_data
from typer.testing import CliRunner

import branchpoint as bp
from branchpoint.agents.code_team import CODE
from branchpoint.agents.teams import MATH
from branchpoint.cli import app
from branchpoint.errors import BranchpointError
from branchpoint.interventions.pipeline import HypothesisTest, RunDebug
from branchpoint.interventions.upgrade import agent_upgrades, upgrade_arm, upgrade_hypotheses
from branchpoint.interventions.verdicts import decide_verdict
from branchpoint.model import Outcome, Run, Step, Task

TASK = Task(task_id="t", question="q", answer="1")


def _steps(*agents: str) -> list[Step]:
    return [
        Step(run_id="r", index=i, agent=a, kind="message", content="x")
        for i, a in enumerate(agents)
    ]


def _run(run_id: str = "r", team: str = "math") -> Run:
    return Run(run_id=run_id, team=team, task=TASK, model="local", seed=0, status="failed")


def test_each_model_agent_is_tested_from_its_first_turn_and_tool_turns_are_not() -> None:
    hyps = upgrade_hypotheses(_run(), _steps("Planner", "Solver", "Solver", "Verifier"), MATH)
    assert [(h.agent, h.step, h.method) for h in hyps] == [
        ("Planner", 0, "upgrade"),
        ("Solver", 1, "upgrade"),
        ("Verifier", 3, "upgrade"),
    ]
    # The code team's Tester runs the examples without a model: nothing to upgrade there.
    code = upgrade_hypotheses(_run(team="code"), _steps("Coder", "Tester", "Coder"), CODE)
    assert [(h.agent, h.step) for h in code] == [("Coder", 0)]
    arm = upgrade_arm(code[0], "local:coder-1.5b")
    assert (arm.kind, arm.step, arm.agent, arm.model) == (
        "swap_model",
        0,
        "Coder",
        "local:coder-1.5b",
    )
    # An agent that never speaks in the run is not tested.
    assert [h.agent for h in upgrade_hypotheses(_run(), _steps("Planner", "Solver"), MATH)] == [
        "Planner",
        "Solver",
    ]


def _outcomes(successes: int, n: int, kind: str) -> list[Outcome]:
    return [
        Outcome(
            fork_run_id=f"f{kind}{i}",
            parent_run_id="r",
            intervention_id=kind,
            intervention_kind=kind,
            step=0,
            repeat=i,
            success=i < successes,
            milestones_achieved=0,
            milestones_total=1,
            progress_delta=0.0,
            fulfilled=True,
        )
        for i in range(n)
    ]


def _report(run_id: str, tested: dict[str, tuple[int, int]]) -> RunDebug:
    """A debugged run whose agents' upgrades succeeded (upgraded, control) times out of 3."""
    run = _run(run_id)
    steps = _steps(*tested)
    report = RunDebug(run=run, steps=steps, trials=[])
    for hyp in upgrade_hypotheses(run, steps, MATH):
        up, control = tested[hyp.agent]
        iv = upgrade_arm(hyp, "strong")
        outcomes, controls = _outcomes(up, 3, "swap_model"), _outcomes(control, 3, "resample")
        verdict = decide_verdict(hyp.hypothesis_id, run_id, iv.intervention_id, outcomes, controls)
        report.tests.append(HypothesisTest(hyp, iv, outcomes, controls, verdict))
    return report


def test_agents_are_summed_over_runs_and_only_a_significant_upgrade_is_worth_it() -> None:
    reports = [
        _report(f"r{i}", {"Planner": (1, 1), "Solver": (3, 0), "Verifier": (1, 0)})
        for i in range(4)
    ]
    rows = {r.agent: r for r in agent_upgrades(reports)}
    solver, planner, verifier = rows["Solver"], rows["Planner"], rows["Verifier"]
    assert (solver.runs, solver.successes, solver.forks) == (4, 12, 12)
    assert (solver.control_successes, solver.control_forks) == (0, 12)
    assert solver.p_value < 1e-5 and solver.holm_p == pytest.approx(3 * solver.p_value)
    assert solver.verdict == "worth upgrading"
    assert solver.interval[0] > 0.7 and solver.difference == pytest.approx(1.0)
    # Trying again did as well: no better than control, whatever the fork count.
    assert planner.verdict == "no better than control" and planner.difference == 0
    # Better than control, but 4/12 against 0/12 is not enough once corrected for 3 agents.
    assert verifier.p_value < 0.05 < verifier.holm_p and verifier.verdict == "not significant"


def test_a_sim_team_is_upgraded_per_agent_and_the_sweep_resumes(tmp_path: Path) -> None:
    """Through the API on the sim team (in-process): one upgrade hypothesis per model agent of
    each failed run, 3 forks each beside 3 controls, stored as verdicts; run again, the same
    sweep runs no fork twice."""
    with bp.session(tmp_path / "t.duckdb", model="sim") as s:
        runs = s.run(tasks="builtin", limit=8, team="math")
        failed = [r for r in runs if r.status == "failed"]
        assert failed
        result = s.upgrade(failed, model="sim:0", repeats=3)
        rows = bp.agent_upgrades(result.reports)
        assert {r.agent for r in rows} == {"Planner", "Solver", "Verifier"}
        assert all(r.forks == r.control_forks == 3 * r.runs for r in rows)
        assert {r.runs for r in rows if r.agent != "Verifier"} == {len(failed)}
        stored = s.sql(
            "SELECT count(*) AS n FROM verdicts v JOIN hypotheses h USING (hypothesis_id) WHERE h.method = 'upgrade'"
        )
        assert stored[0]["n"] == sum(r.runs for r in rows)
        forks = s.sql("SELECT count(*) AS n FROM runs WHERE parent_run_id IS NOT NULL")[0]["n"]
        again = s.execute_sweep(s.upgrade_spec(failed, model="sim:0"), sweep_id=result.sweep_id)
        assert (
            s.sql("SELECT count(*) AS n FROM runs WHERE parent_run_id IS NOT NULL")[0]["n"] == forks
        )
        assert bp.agent_upgrades(again.reports) == rows


def test_an_upgrade_that_cannot_work_is_refused_before_anything_is_recorded(tmp_path: Path) -> None:
    with bp.session(tmp_path / "t.duckdb", model="sim") as s:
        failed = [r for r in s.run(tasks="builtin", limit=8, team="math") if r.status == "failed"]
        with pytest.raises(BranchpointError, match="model"):
            s.upgrade(failed, model="local:/nowhere/model.gguf")
        with pytest.raises(BranchpointError, match="no runs to upgrade"):
            s.upgrade([], model="sim:0")
        assert s.sql("SELECT count(*) AS n FROM sweeps")[0]["n"] == 0


@pytest.mark.ray
def test_the_cli_prints_each_agent_with_its_controls_and_what_is_worth_upgrading(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "t.duckdb")
    runner = CliRunner()
    done = runner.invoke(app, ["run", "--model", "sim", "--limit", "8", "--db", db])
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        app, ["upgrade", "--failed", "--to", "sim:0", "--db", db], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 0, done.output
    assert re.search(r"upgrading each agent to sim:0", done.output)
    assert re.search(
        r"│ Solver +│ \d+ +│ \d+/\d+ +│ \[0\.\d\d, [01]\.\d\d\] +│ \d+/\d+ +│", done.output
    )
    assert "no agent's upgrade to sim:0 beats its controls significantly" in done.output
    done = runner.invoke(app, ["upgrade", "--to", "sim:0", "--db", db])
    assert done.exit_code == 2 and "give a RUN_ID or --failed" in done.output


@needs_shared_data
def test_upgrading_only_imported_logs_says_there_is_nothing_to_re_run(tmp_path: Path) -> None:
    """Imported logs failed too, but have no checkpoints: refused in one line, before Ray."""
    logs = SHARED_DATA / "whowhen_samples"
    db = str(tmp_path / "t.duckdb")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "whowhen", str(logs), "--db", db]).exit_code == 0
    done = runner.invoke(app, ["upgrade", "--failed", "--db", db])
    assert done.exit_code == 2
    assert done.output.strip() == (
        "error: no failed runs to upgrade (imported logs cannot be re-run): run a team first"
    )
