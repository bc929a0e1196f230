"""Wilson intervals, Fisher's exact test, verdict thresholds, the control rule and fulfilment."""

from __future__ import annotations

import pytest

from branchpoint.interventions.verdicts import (
    beats_control,
    decide_verdict,
    fisher_exact_greater,
    is_fulfilled,
    weigh_control,
    wilson_interval,
)
from branchpoint.model import Instruct, Outcome, ReplaceMessage, ReplacePlan, Resample, Step


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [(0, 3, 0.0, 0.5615), (3, 3, 0.4385, 1.0), (2, 3, 0.2077, 0.9385), (5, 10, 0.2366, 0.7634)],
)
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_empty_and_invalid() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def _outcome(success: bool, fulfilled: bool, progress: float, repeat: int = 0) -> Outcome:
    return Outcome(
        fork_run_id=f"f{repeat}",
        parent_run_id="p",
        intervention_id="iv",
        intervention_kind="instruct",
        step=1,
        repeat=repeat,
        success=success,
        milestones_achieved=0,
        milestones_total=2,
        progress_delta=progress,
        fulfilled=fulfilled,
    )


def _verdict(rows: list[tuple[bool, bool, float]], controls: int = 0):
    outcomes = [_outcome(s, f, p, i) for i, (s, f, p) in enumerate(rows)]
    control = [_outcome(i < controls, True, 0.0, i) for i in range(3)]
    return decide_verdict("hyp", "p", "iv", outcomes, control)


def test_two_of_three_successes_validate() -> None:
    v = _verdict([(True, True, 1.0), (True, False, 1.0), (False, False, 0.0)], controls=1)
    assert v.label == "validated"
    assert (v.n, v.successes, v.fulfilled, v.control_n, v.control_successes) == (3, 2, 1, 3, 1)
    assert v.control_rate == pytest.approx(1 / 3)
    assert (v.wilson_low, v.wilson_high) == pytest.approx((0.2077, 0.9385), abs=1e-4)


def test_fulfilled_with_progress_is_partial_and_without_is_refuted() -> None:
    partial = _verdict([(True, True, 0.5), (False, True, 0.0), (False, True, 0.1)])
    assert partial.label == "partially validated"
    assert partial.mean_progress == pytest.approx(0.2)
    refuted = _verdict([(False, True, 0.5), (False, True, 0.0), (False, True, 0.0)])
    assert refuted.label == "refuted"


def test_not_fulfilled_or_no_forks_is_inconclusive() -> None:
    assert _verdict([(False, True, 1.0), (False, False, 1.0), (False, False, 1.0)]).label == (
        "inconclusive"
    )
    assert _verdict([]).label == "inconclusive"
    assert _verdict([]).mean_progress == 0.0


def _step(content: str) -> Step:
    return Step(run_id="r", index=2, agent="Solver", kind="message", content=content)


def test_fulfilment_per_intervention_kind() -> None:
    original, same, changed = _step("8 * 2 = 16"), _step("8  * 2 = 16\n"), _step("9 * 2 = 18")
    instruct = Instruct(step=2, instruction="Re-check the subtraction.")
    assert is_fulfilled(original, changed, instruct)
    assert not is_fulfilled(original, same, instruct)
    assert not is_fulfilled(original, None, instruct)
    assert is_fulfilled(original, same, ReplaceMessage(step=2, content="9 * 2 = 18"))
    assert is_fulfilled(original, same, ReplacePlan(step=2, plan="1. redo"))
    assert not is_fulfilled(original, None, ReplacePlan(step=2, plan="1. redo"))
    assert is_fulfilled(None, None, Resample(step=2))


def test_a_fix_no_better_than_its_controls_is_labelled_so() -> None:
    # The case: replace_plan 1/2 "partially validated" while resample succeeded 2/2.
    outcomes = [_outcome(True, True, 0.5, 0), _outcome(False, True, 0.5, 1)]
    controls = [_outcome(True, True, 0.0, 0), _outcome(True, True, 0.0, 1)]
    v = decide_verdict("hyp", "p", "iv", outcomes, controls)
    assert v.label == "no better than control"
    tie = _verdict([(True, True, 1.0), (True, True, 1.0), (True, True, 1.0)], controls=3)
    assert tie.label == "no better than control"  # 3/3 is no fix when trying again gives 3/3


def test_equal_success_rates_are_broken_by_progress() -> None:
    better = _verdict([(False, True, 0.5), (False, True, 0.5), (True, True, 0.5)], controls=1)
    assert better.label == "partially validated"  # 1/3 = 1/3, progress 0.5 > 0.0
    same = _verdict([(False, True, 0.0), (False, True, 0.0), (True, True, 0.6)], controls=1)
    assert same.mean_progress == pytest.approx(0.2) and same.label == "partially validated"


def test_without_controls_a_success_is_inconclusive() -> None:
    outcomes = [_outcome(True, True, 1.0, i) for i in range(3)]
    assert decide_verdict("hyp", "p", "iv", outcomes, []).label == "inconclusive"


def test_refuted_and_inconclusive_are_not_weighed() -> None:
    assert weigh_control("refuted", False, True) == "refuted"
    assert weigh_control("inconclusive", False, True) == "inconclusive"
    assert weigh_control("validated", True, True) == "validated"
    half = [_outcome(True, True, 0.0, 0), _outcome(False, True, 0.0, 1)]
    assert beats_control(2, 3, 0.0, half, by_progress=False)
    assert not beats_control(1, 2, 0.5, half, by_progress=False)
    assert beats_control(1, 2, 0.5, half, by_progress=True)


@pytest.mark.parametrize(
    ("a", "n1", "c", "n2", "p"),
    [
        (3, 3, 0, 3, 0.05),  # 1 / C(6,3)
        (10, 10, 0, 10, 1 / 184756),
        (0, 3, 3, 3, 1.0),
        (7, 10, 2, 10, 0.03489),  # scipy.stats.fisher_exact([[7,3],[2,8]], "greater")
        (0, 0, 1, 3, 1.0),
    ],
)
def test_fisher_exact_one_sided(a: int, n1: int, c: int, n2: int, p: float) -> None:
    assert fisher_exact_greater(a, n1, c, n2) == pytest.approx(p, abs=1e-4)
