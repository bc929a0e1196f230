"""Verdicts on hypotheses from their forks' outcomes: the Wilson interval, Fisher's exact test,
whether an intervention was fulfilled, and the decision rule (validated / partially validated /
no better than control / refuted / inconclusive), which weighs the resample control arm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from branchpoint.model import Intervention, Outcome, Step, Verdict, VerdictLabel

# DESIGN.md thresholds: 2/3 of forks, and 20% of the milestones gained.
MAJORITY_NUM, MAJORITY_DEN = 2, 3
MIN_PROGRESS = 0.2


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a success rate (95% by default); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _majority(count: int, n: int) -> bool:
    # Integer arithmetic: 2 of 3 is exactly the threshold, with no float rounding at the edge.
    return n > 0 and count * MAJORITY_DEN >= MAJORITY_NUM * n


def verdict_label(successes: int, fulfilled: int, n: int, mean_progress: float) -> VerdictLabel:
    """The DESIGN.md rule on counts: success majority, else fulfilled with or without progress."""
    if n == 0:
        return "inconclusive"
    if _majority(successes, n):
        return "validated"
    if _majority(fulfilled, n):
        # The tolerance keeps a mean of exactly 0.2 (e.g. 0.6 / 3 in floats) on the passing side.
        gained = mean_progress >= MIN_PROGRESS - 1e-9
        return "partially validated" if gained else "refuted"
    return "inconclusive"


def beats_control(
    successes: int, n: int, mean_progress: float, control: Sequence[Outcome], by_progress: bool
) -> bool:
    """Whether an intervention arm did better than its resample controls at the same step: a
    higher success rate, or (when `by_progress`, for a partial validation) the same rate with
    more milestone progress. With no controls there is nothing to beat."""
    if not control or n == 0:
        return False
    c_n = len(control)
    c_successes = sum(c.success for c in control)
    if successes * c_n != c_successes * n:  # compare rates in integers: 1/2 vs 2/4 is a tie
        return successes * c_n > c_successes * n
    c_progress = sum(c.progress_delta for c in control) / c_n
    return by_progress and mean_progress > c_progress + 1e-9


def weigh_control(label: VerdictLabel, beats: bool, has_control: bool) -> VerdictLabel:
    """A success-like label stands only when the arm beats its controls: trying again is not a
    fix. Without controls it cannot be weighed, so it is inconclusive."""
    if label not in ("validated", "partially validated") or beats:
        return label
    return "no better than control" if has_control else "inconclusive"


def fisher_exact_greater(a: int, n1: int, c: int, n2: int) -> float:
    """One-sided Fisher's exact p-value that arm 1 (a of n1 succeeded) has a higher success rate
    than arm 2 (c of n2): the hypergeometric tail P(X >= a) with the margins fixed."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    total, successes = n1 + n2, a + c
    denom = math.comb(total, n1)
    top = min(n1, successes)
    tail = sum(
        math.comb(successes, x) * math.comb(total - successes, n1 - x) for x in range(a, top + 1)
    )
    return min(1.0, tail / denom)


def decide_verdict(
    hypothesis_id: str,
    run_id: str,
    intervention_id: str,
    outcomes: Sequence[Outcome],
    controls: Sequence[Outcome],
) -> Verdict:
    """The verdict on one hypothesis from its intervention forks and resample controls.

    Validated if >= 2/3 of forks succeed; partially validated if fewer succeed but >= 2/3 were
    fulfilled and mean progress >= 0.2; refuted if fulfilled without that progress; inconclusive
    otherwise (not fulfilled, or no forks). Validated and partially validated also require the
    arm to beat its resample controls (`beats_control`); otherwise: no better than control.
    """
    n = len(outcomes)
    successes = sum(o.success for o in outcomes)
    fulfilled = sum(o.fulfilled for o in outcomes)
    mean_progress = sum(o.progress_delta for o in outcomes) / n if n else 0.0
    low, high = wilson_interval(successes, n)
    label = verdict_label(successes, fulfilled, n, mean_progress)
    return Verdict(
        hypothesis_id=hypothesis_id,
        run_id=run_id,
        intervention_id=intervention_id,
        label=weigh_control(
            label,
            beats_control(successes, n, mean_progress, controls, label == "partially validated"),
            bool(controls),
        ),
        n=n,
        successes=successes,
        fulfilled=fulfilled,
        mean_progress=mean_progress,
        wilson_low=low,
        wilson_high=high,
        control_n=len(controls),
        control_successes=sum(c.success for c in controls),
    )


def is_fulfilled(
    original_step: Step | None, fork_step: Step | None, intervention: Intervention
) -> bool:
    """Whether the fork actually carried out the intervention at its step (mechanical check).

    Edits written into the state (replace_message, replace_plan) and model swaps hold once the
    fork has the step; an instruction or a runtime trace holds when the acting agent's content
    changed; a resample asks for nothing and always holds.
    """
    if intervention.kind == "resample":
        return True
    if fork_step is None:
        return False
    if intervention.kind in ("instruct", "runtime_trace"):
        return original_step is None or _squash(fork_step.content) != _squash(original_step.content)
    return True


def _squash(text: str) -> str:
    return " ".join(text.split())


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together (same order as given): an
    adjusted p below 0.05 holds for the family of tests at that level."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
