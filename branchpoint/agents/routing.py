"""Routing and termination rules shared by user teams (team files and autogen teams).

Each builder returns a pure `advance(state, agent, content) -> Advance`, like the built-in
teams' rules: round robin in a fixed order, or, for a selector team, no fixed next speaker (the
selector model's choice is filled in by the graph). Termination follows autogen's conditions: a
text mentioned in a message (optionally only by some agents), or a limit on turns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from branchpoint.agents.teams import Advance
from branchpoint.model import StepKind
from branchpoint.tasks import extract_final_answer

AdvanceRule = Callable[[Mapping[str, Any], str, str], Advance]


@dataclass(frozen=True)
class Termination:
    """When a team's run ends: any of `texts` mentioned (by one of `sources`, when given), after
    `max_turns` agent turns, or after a turn of an agent in `stop_after`."""

    texts: tuple[str, ...] = ()
    sources: tuple[str, ...] | None = None
    max_turns: int | None = None
    stop_after: tuple[str, ...] = ()

    def mentioned(self, agent: str, content: str) -> bool:
        """Whether this message ends the run by its text or its speaker."""
        if agent in self.stop_after:
            return True
        if self.sources is not None and agent not in self.sources:
            return False
        return any(text in content for text in self.texts)

    def reached(self, state: Mapping[str, Any]) -> bool:
        """Whether the turn being taken at this state is the last one allowed."""
        return self.max_turns is not None and int(state.get("step") or 0) + 1 >= self.max_turns


def final_answer_from(content: str, texts: Sequence[str] = ()) -> str | None:
    """The answer in a team's last message: the number after `FINAL ANSWER:`, else the message
    without its termination text."""
    answer = extract_final_answer(content)
    if answer is not None:
        return answer
    for text in texts:
        content = content.replace(text, "")
    return content.strip() or None


def _ending(
    termination: Termination, state: Mapping[str, Any], agent: str, content: str, kind: StepKind
) -> Advance | None:
    if termination.mentioned(agent, content) or termination.reached(state):
        return Advance(
            kind="final" if kind == "message" else kind,
            next=None,
            done=True,
            final_answer=final_answer_from(content, termination.texts),
        )
    return None


def round_robin(
    order: Sequence[str], termination: Termination, tool_only: Collection[str] = ()
) -> AdvanceRule:
    """Agents speak in `order`, over and over, until the termination holds."""
    names = tuple(order)

    def advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
        kind: StepKind = "tool_result" if agent in tool_only else "message"
        ending = _ending(termination, state, agent, content, kind)
        if ending is not None:
            return ending
        return Advance(kind=kind, next=names[(names.index(agent) + 1) % len(names)])

    return advance


def selected(termination: Termination, tool_only: Collection[str] = ()) -> AdvanceRule:
    """A selector team's rule: the kind and the end only; the graph fills in the next speaker."""

    def advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
        kind: StepKind = "tool_result" if agent in tool_only else "message"
        ending = _ending(termination, state, agent, content, kind)
        return ending or Advance(kind=kind, next=None)

    return advance
