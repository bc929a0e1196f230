"""Rule-based segmentation of runs into trials."""

from __future__ import annotations

from dover_samples import math_run

from branchpoint.interventions.segment import segment_by_kinds, trials_from_starts
from branchpoint.model import Step


def _steps(kinds: list[str]) -> list[Step]:
    return [
        Step(run_id="r", index=i, agent="A", kind=k, content="x")  # type: ignore[arg-type]
        for i, k in enumerate(kinds)
    ]


def test_math_run_replan_starts_second_trial() -> None:
    _, steps = math_run()
    trials = segment_by_kinds(steps)
    assert [(t.index, t.start, t.end) for t in trials] == [(0, 0, 3), (1, 3, 6)]
    assert all(t.run_id == "math-ducks" for t in trials)


def test_steps_before_first_plan_belong_to_trial_zero() -> None:
    trials = segment_by_kinds(_steps(["message", "message", "plan", "message", "plan"]))
    assert [(t.index, t.start, t.end) for t in trials] == [(0, 0, 4), (1, 4, 5)]


def test_no_plan_is_one_trial_and_no_steps_is_none() -> None:
    assert [(t.start, t.end) for t in segment_by_kinds(_steps(["message"] * 4))] == [(0, 4)]
    assert segment_by_kinds([]) == []


def test_starts_outside_the_run_are_ignored() -> None:
    trials = trials_from_starts(_steps(["message"] * 5), [-1, 2, 2, 3, 9])
    assert [(t.start, t.end) for t in trials] == [(0, 3), (3, 5)]
