"""The tables `benchmarks/bench_real.py` prints (RESULTS.md quotes them) and its argument checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.debugger_tables import arm_rows, blamed_vs_other_steps
from branchpoint.interventions.verdicts import holm

ROOT = Path(__file__).resolve().parents[1]


def _outcomes(successes: int, n: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "success": i < successes,
            "progress_delta": 0.0,
            "input_tokens": 1,
            "output_tokens": 1,
            "seconds": 60.0,
        }
        for i in range(n)
    ]


def _record(run_id: str, arm: int, control: int, curve: dict[str, float]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "curve": curve,
        "hypotheses": [{"method": "ldb", "agent": "Coder", "step": 0, "reason": ""}],
        "arms": [
            {
                "role": "swap_model",
                "method": "ldb",
                "kind": "swap_model",
                "step": 0,
                "intervention_id": f"{run_id}-swap",
                "outcomes": _outcomes(arm),
            },
            {
                "role": "resample",
                "method": "ldb",
                "kind": "resample",
                "step": 0,
                "intervention_id": f"{run_id}-resample",
                "outcomes": _outcomes(control),
            },
        ],
    }


def test_an_arm_is_compared_with_the_controls_at_its_own_steps() -> None:
    records = [_record(f"run-{i}", arm=3, control=0, curve={}) for i in range(4)]
    rows = {row[0]: row for row in arm_rows(records)}
    swap, resample = rows["swap_model"], rows["resample"]
    assert swap[3].startswith("12/12 = 100%") and swap[5] == "0/12" and swap[6] == "+100%"
    assert swap[7] == "< 0.001"  # Fisher's exact test, one-sided (p = 2e-6 here)
    assert resample[5] == "—" and resample[7] == "—"  # a control is not tested against itself
    assert swap[8] == swap[7]  # one arm tested: Holm's adjustment changes nothing
    equal = {row[0]: row for row in arm_rows([_record("run-0", arm=2, control=2, curve={})])}
    assert equal["swap_model"][6] == "+0%" and float(equal["swap_model"][7]) > 0.5


def test_holm_adjusts_p_values_for_the_arms_tested_together() -> None:
    # Step-down: the smallest p times 3, the next times 2 (never below the one before), then 1.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([]) == []


def test_blamed_versus_other_steps_needs_a_value_curve() -> None:
    # Without resample forks at other steps there is nothing to compare with: never a "win".
    assert blamed_vs_other_steps([_record("run-0", 3, 0, curve={})]) == [
        ["ldb", "not measured (no value curve at other steps)", "—"]
    ]
    # run-0: the swap at the blamed step (3/3) beats the other step's 0.33, a retry there (0/3)
    # does not; run-1: neither beats 0.5; run-2: a retry at the blamed step (3/3) does too.
    measured = [
        _record("run-0", 3, 0, {"0": 0.0, "2": 0.33}),
        _record("run-1", 0, 0, {"2": 0.5}),
        _record("run-2", 0, 3, {"0": 1.0, "2": 0.0}),
    ]
    assert blamed_vs_other_steps(measured) == [["ldb", "2/3 = 67%", "1/3 = 33%"]]


def test_bench_real_refuses_an_unknown_method_or_arm_in_one_line() -> None:
    for flag, value in (("--methods", "ldb,guess"), ("--arms", "swap_model,magic")):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_real", flag, value, "--report"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "unknown" in done.stderr and "Traceback" not in done.stderr


def test_bench_arms_test_a_blamed_tool_result_at_the_program_writers_turn() -> None:
    """`arms_for` (what bench_real replays): a hypothesis that blames the math-pot Runner (a tool
    turn) is tested at the Solver's turn that wrote the program, with the recommended fix,
    `swap_model`, and `resample` controls there; the upgrade arms cover each model agent."""
    from benchmarks.bench_real import arms_for
    from branchpoint.agents.pot_team import POT
    from branchpoint.model import Hypothesis, Instruct, Resample, Step, SwapModel
    from tests.interventions.dover_samples import math_run

    run, _ = math_run()
    steps = [
        Step(
            run_id=run.run_id,
            index=i,
            agent=agent,
            kind=kind,
            content=content,
            checkpoint_id=f"c{i}",
        )
        for i, (agent, kind, content) in enumerate(
            [
                ("Solver", "message", "```python\nprint(1)\n```"),
                ("Runner", "tool_result", "printed 1"),
                ("Verifier", "message", "ACCEPT"),
            ]
        )
    ]
    blamed = Hypothesis(
        run_id=run.run_id, agent="Runner", step=1, reason="printed the wrong total", method="dover"
    )
    arms = arms_for(run, steps, POT, [blamed], "local:coder-1.5b")
    by_role = {(role, who): iv for role, who, iv in arms}
    assert isinstance(by_role["recommended", "dover"], Instruct)
    assert by_role["recommended", "dover"].step == 0
    assert by_role["swap_model", "dover"] == SwapModel(
        step=0, model="local:coder-1.5b", agent="Solver"
    )
    assert by_role["resample", "dover"] == Resample(step=0)
    assert by_role["upgrade", "Verifier"] == SwapModel(
        step=2, model="local:coder-1.5b", agent="Verifier"
    )
    assert by_role["upgrade_control", "Solver"] == Resample(step=0)


def test_bench_real_redebugs_a_failure_saved_with_fewer_methods_or_arms() -> None:
    """A failure debugged with the upgrade arms only is debugged again when value curves or a
    judge's method are asked for, with what it had kept; one that has them is not."""
    from benchmarks.bench_real import debug_plan

    upgrade = [{"role": "upgrade"}, {"role": "upgrade_control"}]
    upgrade_only = {"hypotheses": [], "failures": [], "curve": {}, "arms": upgrade}
    older = {
        "hypotheses": [{"method": "dover"}],
        "failures": ["ldb: no program"],
        "curve": {"0": 0.0, "2": 1.0},
        "arms": [{"role": "resample"}],
    }
    assert debug_plan(None, ["ldb"], {"swap_model"}) == (["ldb"], {"swap_model"})
    assert debug_plan(upgrade_only, [], {"upgrade"}) is None
    assert debug_plan(upgrade_only, ["value_curve", "dover"], {"resample"}) == (
        ["value_curve", "dover"],
        {"upgrade", "upgrade_control", "resample"},
    )
    # Asking for one method again keeps the others (no record flips between method sets).
    assert debug_plan(older, ["dover"], {"resample"}) is None
    assert debug_plan(older, ["dover"], {"swap_model"}) == (
        ["value_curve", "dover", "ldb"],
        {"resample", "swap_model"},
    )
    # A record saved with its requested roles is not redone for a role that had no arm.
    asked = {**older, "methods": ["dover"], "roles": ["resample", "runtime_trace"]}
    assert debug_plan(asked, ["dover"], {"runtime_trace"}) is None


def test_bench_real_runs_the_humaneval_problems_from_the_index_asked() -> None:
    """`--humaneval 3 --humaneval-from 100` runs HumanEval/100–102; GSM-Plus from its start."""
    from argparse import Namespace

    from benchmarks.bench_real import family_tasks

    args = Namespace(humaneval=3, humaneval_from=100, gsmplus=2)
    assert [t.task_id for t in family_tasks("code", args)] == [
        "HumanEval/100",
        "HumanEval/101",
        "HumanEval/102",
    ]
    assert len(family_tasks("math", args)) == 2


def test_bench_real_redoes_a_method_that_gave_a_saved_failure_no_hypothesis() -> None:
    """`--redo ldb` tries `ldb` again where it found nothing (e.g. before its one-block
    shortcut), keeping the record's methods and arms; a failure where it found one is kept."""
    from benchmarks.bench_real import debug_plan

    arms = [{"role": "resample"}, {"role": "swap_model"}]
    missed = {
        "methods": ["value_curve", "ldb"],
        "hypotheses": [{"method": "value_curve"}],
        "failures": ["ldb: attempt 3: first_wrong_block must be one of the traced blocks [0]"],
        "curve": {"0": 0.0},
        "arms": arms,
    }
    found = {**missed, "hypotheses": [{"method": "ldb"}], "failures": []}
    assert debug_plan(missed, ["ldb"], {"resample"}) is None
    assert debug_plan(missed, ["ldb"], {"resample"}, redo=["ldb"]) == (
        ["value_curve", "ldb"],
        {"resample", "swap_model"},
    )
    assert debug_plan(found, ["ldb"], {"resample"}, redo=["ldb"]) is None
    assert debug_plan(missed, ["ldb"], {"resample"}, redo=["dover"]) is None
