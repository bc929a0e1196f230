"""Which recorded steps make up a run's conversation, and where a fork departs from its parent.

Pure: a fork records only the steps from its fork step on; the ones before are its parent's
(itself possibly a fork). These functions turn a lineage chain into the step ranges to read,
and two step sequences into the first index at which they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NO_END = 2**31 - 1


@dataclass(frozen=True)
class Link:
    """One run of a lineage chain: its id and the step it was forked at (None for a root)."""

    run_id: str
    fork_step: int | None


@dataclass(frozen=True)
class Segment:
    """Steps [start, end) of a run's conversation are recorded under `run_id`."""

    run_id: str
    start: int
    end: int


def step_segments(chain: Sequence[Link]) -> list[Segment]:
    """The ranges each ancestor contributes, given the chain from the run up to its root.

    A fork of a fork can branch earlier than its parent did, so each ancestor contributes only
    the steps below every descendant's fork step.
    """
    segments = []
    upper = NO_END
    for link in chain:
        start = link.fork_step or 0
        if start < upper:
            segments.append(Segment(link.run_id, start, upper))
            upper = start
        if upper == 0:
            break
    return segments


@dataclass(frozen=True)
class StepKey:
    """What identifies a step's effect when comparing two runs: its agent and its content."""

    index: int
    agent: str
    content_hash: str


def first_divergence(
    original: Sequence[StepKey], fork: Sequence[StepKey], start: int
) -> int | None:
    """The first step index >= `start` where the two runs differ (a step only one of them has
    counts as a difference); None if they are the same from `start` on."""
    left = {s.index: (s.agent, s.content_hash) for s in original if s.index >= start}
    right = {s.index: (s.agent, s.content_hash) for s in fork if s.index >= start}
    for index in sorted(left.keys() | right.keys()):
        if left.get(index) != right.get(index):
            return index
    return None
