"""Split a run into trials: spans of steps from one (re-)plan to the next.

`segment_by_kinds` is the rule for teams whose plan steps are known (the built-in teams mark them
with kind "plan"); `segment_with_judge` asks an LLM to label plan steps in foreign logs and falls
back to the rule when the reply is unusable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from branchpoint.interventions.judge import (
    Judge,
    ask_json,
    parse_step_index,
    render_log,
    render_prompt,
)
from branchpoint.model import Run, Step, Trial

log = logging.getLogger(__name__)


def trials_from_starts(steps: Sequence[Step], starts: Iterable[int]) -> list[Trial]:
    """Trials that begin at each index in `starts` (plan steps).

    Steps before the first start (the user's request) join the first start's trial, trial 0.
    """
    if not steps:
        return []
    indices = sorted(s.index for s in steps)
    first, end = indices[0], indices[-1] + 1
    inside = sorted({k for k in starts if first <= k < end})
    bounds = [first, *inside[1:]]
    run_id = steps[0].run_id
    return [
        Trial(
            run_id=run_id, index=i, start=start, end=bounds[i + 1] if i + 1 < len(bounds) else end
        )
        for i, start in enumerate(bounds)
    ]


def segment_by_kinds(steps: Sequence[Step]) -> list[Trial]:
    """Rule-based trials: every step of kind "plan" starts a new trial."""
    return trials_from_starts(steps, (s.index for s in steps if s.kind == "plan"))


def segment_with_judge(
    run: Run, steps: Sequence[Step], judge: Judge, max_chars: int = 200
) -> list[Trial]:
    """Trials from the judge's plan-step labels; the rule-based trials when the reply is unusable.

    Labels that are not step indices of this run are dropped; if none survive, the rule decides.
    """
    if not steps:
        return []
    valid = {s.index for s in steps}

    def parse(reply: dict[str, Any]) -> list[int]:
        labels = reply["plan_steps"]
        if not isinstance(labels, list):
            raise TypeError("plan_steps must be a list of step numbers")
        kept = sorted(
            {k for k in (parse_step_index(x) for x in labels) if k is not None and k in valid}
        )
        if not kept:
            raise ValueError(f"plan_steps must name steps between {min(valid)} and {max(valid)}")
        return kept

    system, user = render_prompt(
        "segment", question=run.task.question, log=render_log(steps, max_chars)
    )
    failures: list[str] = []
    starts = ask_json(judge, system, user, parse, retries=1, failures=failures)
    if starts is None:
        log.info("segmentation of %s fell back to step kinds: %s", run.run_id, failures)
        return segment_by_kinds(steps)
    return trials_from_starts(steps, starts)
