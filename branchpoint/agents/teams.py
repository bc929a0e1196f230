"""Team definitions: agents, their prompts and tools, and the pure routing after each turn.

A team is data (`TeamSpec`); `advance` decides, from the state and one agent's message, the step's
kind, who speaks next, and whether the run is over. Nothing here performs I/O except reading the
prompt templates shipped beside this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from branchpoint.errors import BranchpointError
from branchpoint.model import StepKind
from branchpoint.tasks import extract_final_answer

CONTINUE = "CONTINUE"
STALL_LIMIT = 2
MAX_REJECTIONS = 3


@dataclass(frozen=True)
class AgentSpec:
    """One agent: its prompt template (None: a tool-only agent that calls no model) and tools."""

    name: str
    prompt: str | None
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class Advance:
    """The effect of one turn on the team's state."""

    kind: StepKind
    next: str | None
    done: bool = False
    final_answer: str | None = None
    sets_plan: bool = False  # this message becomes the task ledger's plan
    stall: int = 0


@dataclass(frozen=True)
class TeamSpec:
    """A team: its agents, who speaks first, how a turn advances the state, which prompt applies."""

    name: str
    agents: tuple[AgentSpec, ...]
    first: str
    advance: Callable[[Mapping[str, Any], str, str], Advance]
    prompt_for: Callable[[Mapping[str, Any], str], str | None]

    def agent(self, name: str) -> AgentSpec:
        """The agent with this name."""
        for spec in self.agents:
            if spec.name == name:
                return spec
        raise BranchpointError(f"team {self.name} has no agent {name!r}")

    @property
    def agent_names(self) -> tuple[str, ...]:
        """Names of the team's agents, in definition order."""
        return tuple(a.name for a in self.agents)


@cache
def prompt_text(name: str) -> str:
    """A prompt template from agents/prompts/NAME.md."""
    return resources.files("branchpoint.agents").joinpath(f"prompts/{name}.md").read_text().strip()


def _math_advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
    stall = int(state.get("stall") or 0)
    if agent == "Planner":
        return Advance(kind="plan", next="Solver", sets_plan=True, stall=stall)
    if agent == "Solver":
        return Advance(
            kind="message", next="Solver" if CONTINUE in content else "Verifier", stall=stall
        )
    answer = extract_final_answer(content)
    if answer is not None:
        return Advance(kind="final", next=None, done=True, final_answer=answer)
    # Small models can reject and retry forever; after MAX_REJECTIONS the run ends unsolved.
    rejections = stall + 1
    return Advance(
        kind="message", next="Solver", done=rejections >= MAX_REJECTIONS, stall=rejections
    )


def _math_prompt(state: Mapping[str, Any], agent: str) -> str | None:
    return prompt_text(f"math_{agent.lower()}")


MATH = TeamSpec(
    name="math",
    agents=(
        AgentSpec("Planner", "math_planner"),
        AgentSpec("Solver", "math_solver", tools=("python",)),
        AgentSpec("Verifier", "math_verifier"),
    ),
    first="Planner",
    advance=_math_advance,
    prompt_for=_math_prompt,
)

MAGENTIC_WORKERS = ("Coder", "ComputerTerminal", "FileSurfer")
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


_LEDGER_FIELD = re.compile(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*"|true|false|-?[\d.]+)')


def parse_progress_ledger(content: str) -> dict[str, Any] | None:
    """The Orchestrator's progress ledger, or None when the reply holds none.

    Small models often stop before the closing brace, so when the JSON object does not parse,
    the fields that are complete are read one by one.
    """
    match = _JSON_OBJECT.search(content) or re.search(r"\{.*", content, re.DOTALL)
    if match is None:
        return None
    try:
        ledger = json.loads(match.group(0))
        return ledger if isinstance(ledger, dict) else None
    except json.JSONDecodeError:
        fields = {key: json.loads(value) for key, value in _LEDGER_FIELD.findall(match.group(0))}
        return fields or None


def speaker_named(value: object) -> str | None:
    """The first worker named in a ledger's next_speaker (models write "Coder|FileSurfer")."""
    found = re.search("|".join(MAGENTIC_WORKERS), str(value or ""))
    return found.group(0) if found else None


def _fallback_speaker(state: Mapping[str, Any]) -> str:
    """When the ledger is unusable, rotate Coder → ComputerTerminal → FileSurfer."""
    last = state.get("last_worker") or "FileSurfer"
    order = list(MAGENTIC_WORKERS)
    return order[(order.index(last) + 1) % len(order)] if last in order else "Coder"


def _magentic_advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
    stall = int(state.get("stall") or 0)
    answer = extract_final_answer(content)
    if agent != "Orchestrator":
        return Advance(
            kind="tool_result" if agent != "Coder" else "message", next="Orchestrator", stall=stall
        )
    if answer is not None:
        return Advance(kind="final", next=None, done=True, final_answer=answer)
    if _is_planning(state):
        return Advance(kind="plan", next="Orchestrator", sets_plan=True, stall=0)
    ledger = parse_progress_ledger(content) or {}
    final = str(ledger.get("final_answer") or "").strip()
    if ledger.get("is_request_satisfied") is True and final:
        return Advance(kind="final", next=None, done=True, final_answer=final)
    stalled = ledger.get("is_in_loop") is True or ledger.get("is_progress_being_made") is False
    stall = stall + 1 if stalled or not ledger else 0
    speaker = speaker_named(ledger.get("next_speaker")) or _fallback_speaker(state)
    return Advance(kind="instruction", next=speaker, stall=stall)


def _is_planning(state: Mapping[str, Any]) -> bool:
    """The Orchestrator writes (or rewrites) the task ledger first and whenever it stalls."""
    return not state.get("plan_id") or int(state.get("stall") or 0) >= STALL_LIMIT


def _magentic_prompt(state: Mapping[str, Any], agent: str) -> str | None:
    if agent == "Orchestrator":
        return prompt_text("magentic_plan" if _is_planning(state) else "magentic_progress")
    return prompt_text("magentic_coder") if agent == "Coder" else None


MAGENTIC = TeamSpec(
    name="magentic",
    agents=(
        AgentSpec("Orchestrator", "magentic_plan"),
        AgentSpec("Coder", "magentic_coder"),
        AgentSpec("ComputerTerminal", None, tools=("python",)),
        AgentSpec("FileSurfer", None, tools=("read_file",)),
    ),
    first="Orchestrator",
    advance=_magentic_advance,
    prompt_for=_magentic_prompt,
)

TEAMS = {"math": MATH, "magentic": MAGENTIC}


def get_team(name: str) -> TeamSpec:
    """A built-in team by name."""
    try:
        return TEAMS[name]
    except KeyError:
        raise BranchpointError(
            f"unknown team {name!r}; choose one of: {', '.join(TEAMS)}"
        ) from None
