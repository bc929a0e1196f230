"""Which recorded steps make up a fork's conversation, and where a fork departs from its parent."""

from __future__ import annotations

from branchpoint.view.lineage import NO_END, Link, Segment, StepKey, first_divergence, step_segments


def test_a_root_run_is_one_segment() -> None:
    assert step_segments([Link("root", None)]) == [Segment("root", 0, NO_END)]


def test_a_fork_reads_its_prefix_from_the_parent() -> None:
    assert step_segments([Link("fork", 3), Link("root", None)]) == [
        Segment("fork", 3, NO_END),
        Segment("root", 0, 3),
    ]


def test_a_fork_of_a_fork_that_branches_earlier_skips_the_middle_run() -> None:
    chain = [Link("grandchild", 1), Link("child", 3), Link("root", None)]
    assert step_segments(chain) == [Segment("grandchild", 1, NO_END), Segment("root", 0, 1)]


def test_a_fork_of_a_fork_that_branches_later_takes_steps_from_all_three() -> None:
    chain = [Link("grandchild", 5), Link("child", 3), Link("root", None)]
    assert step_segments(chain) == [
        Segment("grandchild", 5, NO_END),
        Segment("child", 3, 5),
        Segment("root", 0, 3),
    ]


def keys(*contents: str, start: int = 0) -> list[StepKey]:
    return [StepKey(start + i, "Solver", c) for i, c in enumerate(contents)]


def test_first_divergence_is_the_first_differing_step_from_the_fork_step() -> None:
    original = keys("a", "b", "c", "d")
    fork = keys("a", "b", "c", "x")
    assert first_divergence(original, fork, 2) == 3
    assert first_divergence(original, keys("a", "b", "c", "d"), 2) is None


def test_a_step_only_one_run_has_is_a_divergence() -> None:
    assert first_divergence(keys("a", "b"), keys("a", "b", "c"), 0) == 2


def test_a_different_agent_with_the_same_text_diverges() -> None:
    fork = [StepKey(0, "Verifier", "a")]
    assert first_divergence(keys("a"), fork, 0) == 0
