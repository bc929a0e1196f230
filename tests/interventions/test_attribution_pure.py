"""The judge-free attribution methods: the counterfactual value curve and sim ground truth."""

from __future__ import annotations

import pytest
from dover_samples import math_run

from branchpoint.interventions.attribution import (
    sim_ground_truth,
    summarize_trial,
    value_curve_hypothesis,
)
from branchpoint.interventions.segment import segment_by_kinds


def test_clean_drop_points_at_the_last_recoverable_step() -> None:
    run, steps = math_run()
    hyp = value_curve_hypothesis(run, steps, {0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0})
    assert hyp is not None
    assert (hyp.step, hyp.agent, hyp.method) == (1, "Solver", "value_curve")
    assert hyp.confidence == pytest.approx(1.0)
    assert "V(1)=1.00" in hyp.reason


def test_noisy_curve_still_finds_the_drop() -> None:
    run, steps = math_run()
    curve = {0: 0.67, 1: 0.33, 2: 0.67, 3: 0.0, 4: 0.33, 5: 0.0}
    hyp = value_curve_hypothesis(run, steps, curve)
    assert hyp is not None and hyp.step == 2
    # mean(V[<=2]) - mean(V[>2] + the failed original) = 0.557 - 0.083
    assert hyp.confidence == pytest.approx((0.67 + 0.33 + 0.67) / 3 - 0.33 / 4, abs=1e-6)


def test_ties_go_to_the_later_step() -> None:
    run, steps = math_run()
    # With the failed original as a final 0: k=0 gives 1 - mean(0, 1, 0) = 2/3 and
    # k=2 gives mean(1, 0, 1) - 0 = 2/3 as well -> the later k wins.
    hyp = value_curve_hypothesis(run, steps, {0: 1.0, 1: 0.0, 2: 1.0})
    assert hyp is not None and hyp.step == 2


def test_fault_at_the_last_step_is_found_against_the_failed_original() -> None:
    run, steps = math_run()
    hyp = value_curve_hypothesis(run, steps, {k: 1.0 for k in range(6)})
    assert hyp is not None and (hyp.step, hyp.agent) == (5, "Verifier")


def test_flat_zero_or_empty_curve_has_no_hypothesis() -> None:
    run, steps = math_run()
    assert value_curve_hypothesis(run, steps, {k: 0.0 for k in range(6)}) is None
    assert value_curve_hypothesis(run, steps, {}) is None


def test_change_point_outside_the_steps_is_rejected() -> None:
    run, steps = math_run()
    assert value_curve_hypothesis(run, steps, {7: 1.0, 8: 0.0}) is None


def test_sim_ground_truth_lists_injected_faults() -> None:
    run, _ = math_run()
    (truth,) = sim_ground_truth(run)
    assert (truth.agent, truth.step, truth.method, truth.confidence) == (
        "Solver",
        1,
        "ground_truth",
        1.0,
    )
    assert "arithmetic_error" in truth.reason


def test_trial_summary_is_plan_line_and_last_step() -> None:
    _, steps = math_run()
    first = segment_by_kinds(steps)[0]
    summary = summarize_trial(first, steps)
    assert summary.startswith("Trial 0 (steps 0-2): plan: 1. Find the eggs left")
    assert "ended with [Step 2] Verifier: The plan item 1" in summary


def test_value_curve_is_not_fooled_by_one_noisy_early_rate() -> None:
    run, steps = math_run()
    steps = [steps[i % len(steps)].model_copy(update={"index": i}) for i in range(7)]
    # six resamples per step; the fault is at step 5 (V falls to 0 after it)
    curve = {0: 3 / 6, 1: 1 / 6, 2: 1 / 6, 3: 1 / 6, 4: 1 / 6, 5: 2 / 6, 6: 0.0}
    hyp = value_curve_hypothesis(run, steps, curve, repeats=6)
    assert hyp is not None and hyp.step == 5
