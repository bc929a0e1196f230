"""Verdicts on hypotheses from their forks' outcomes: the Wilson interval, whether an intervention
was fulfilled, and the DESIGN.md decision rule (validated / partially validated / refuted /
inconclusive), with the resample control arm reported beside it.
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
    otherwise (not fulfilled, or no forks).
    """
    n = len(outcomes)
    successes = sum(o.success for o in outcomes)
    fulfilled = sum(o.fulfilled for o in outcomes)
    mean_progress = sum(o.progress_delta for o in outcomes) / n if n else 0.0
    low, high = wilson_interval(successes, n)
    return Verdict(
        hypothesis_id=hypothesis_id,
        run_id=run_id,
        intervention_id=intervention_id,
        label=verdict_label(successes, fulfilled, n, mean_progress),
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
    fork has the step; an instruction holds when the acting agent's content changed; a resample
    asks for nothing and always holds.
    """
    if intervention.kind == "resample":
        return True
    if fork_step is None:
        return False
    if intervention.kind == "instruct":
        return original_step is None or _squash(fork_step.content) != _squash(original_step.content)
    return True


def _squash(text: str) -> str:
    return " ".join(text.split())
