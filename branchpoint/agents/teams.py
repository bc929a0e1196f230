"""Team definitions: agents, their prompts and tools, and the pure routing after each turn.

A team is data (`TeamSpec`); `advance` decides, from the state and one agent's message, the step's
kind, who speaks next, and whether the run is over. An agent declares what the generic graph and
host need to know about it (does it call a model, does it see the plan, does it route the team),
so no team's agent names appear outside its own definition. Nothing here performs I/O except
reading the prompt templates shipped beside this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from branchpoint.agents.scorers import Scorer
from branchpoint.errors import BranchpointError
from branchpoint.model import FunctionToolSpec, SelectorSpec, StepKind, TeamSource
from branchpoint.tasks import extract_final_answer

CONTINUE = "CONTINUE"
STALL_LIMIT = 2
MAX_REJECTIONS = 3


@dataclass(frozen=True)
class AgentSpec:
    """One agent: its prompt (None: a tool-only agent that calls no model) and tools.

    `tools` are built-in tools (`python`: run the code blocks of the reply, or for a tool-only
    agent the newest code block in the transcript; `read_file`: show the workspace files);
    `function_tools` are Python functions the model calls by name (autogen's FunctionTool).
    """

    name: str
    prompt: str | None
    tools: tuple[str, ...] = ()
    sees_plan: bool = True  # the task ledger's plan is shown to it (not to the planner itself)
    orchestrates: bool = False  # it routes the team; its turns are not worker turns
    description: str = ""
    function_tools: tuple[FunctionToolSpec, ...] = ()
    reflect_on_tool_use: bool = False
    model: str | None = None  # its own model spec, used when the run's model is `team`
    model_client: dict[str, Any] | None = None  # its own autogen client component (no backend)
    stop: tuple[str, ...] = ()  # stop sequences of its model calls (e.g. after a closing fence)

    @property
    def calls_model(self) -> bool:
        """Whether its turn asks a model (else it only runs its tool)."""
        return self.prompt is not None


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
    """A team: its agents, who speaks first, how a turn advances the state, which prompt applies.

    With a `selector`, a model picks the speaker after every turn (and the first one): `advance`
    then decides only the kind and the end, and the selector's choice replaces its `next`.
    """

    name: str
    agents: tuple[AgentSpec, ...]
    first: str | None
    advance: Callable[[Mapping[str, Any], str, str], Advance]
    prompt_for: Callable[[Mapping[str, Any], str], str | None]
    selector: SelectorSpec | None = None
    max_steps: int | None = None  # the team's own step limit (the run's limit still applies)
    score: Scorer | None = None  # None: HumanEval tests when the task has them, else numeric
    default_model: str | None = None  # `team`: each agent's own model, when --model is not given
    source: TeamSource | None = None  # where it came from (set by the resolver)

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


def own_prompts(agents: Sequence[AgentSpec]) -> Callable[[Mapping[str, Any], str], str | None]:
    """A `prompt_for` that gives each agent its own prompt, whatever the state."""
    prompts = {a.name: a.prompt for a in agents}
    return lambda state, agent: prompts[agent]


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
        AgentSpec("Planner", "math_planner", sees_plan=False),
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


def speaker_named(value: object, workers: tuple[str, ...] = MAGENTIC_WORKERS) -> str | None:
    """The first worker named in a ledger's next_speaker (models write "Coder|FileSurfer")."""
    found = re.search("|".join(re.escape(w) for w in workers), str(value or ""))
    return found.group(0) if found else None


def _fallback_speaker(state: Mapping[str, Any], workers: tuple[str, ...]) -> str:
    """When the ledger is unusable, rotate through the workers after the last one that spoke."""
    last = state.get("last_worker")
    order = list(workers)
    return order[(order.index(last) + 1) % len(order)] if last in order else order[0]


def is_planning(state: Mapping[str, Any]) -> bool:
    """The Orchestrator writes (or rewrites) the task ledger first and whenever it stalls."""
    return not state.get("plan_id") or int(state.get("stall") or 0) >= STALL_LIMIT


def ledger_advance(
    orchestrator: str, workers: tuple[AgentSpec, ...]
) -> Callable[[Mapping[str, Any], str, str], Advance]:
    """Magentic-One-style routing: the orchestrator plans, then after every worker turn reads
    its progress ledger (done? stalled? who next?) and re-plans after STALL_LIMIT stalls."""
    names = tuple(w.name for w in workers)
    tool_only = {w.name for w in workers if not w.calls_model}

    def advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
        stall = int(state.get("stall") or 0)
        answer = extract_final_answer(content)
        if agent != orchestrator:
            kind: StepKind = "tool_result" if agent in tool_only else "message"
            return Advance(kind=kind, next=orchestrator, stall=stall)
        if answer is not None:
            return Advance(kind="final", next=None, done=True, final_answer=answer)
        if is_planning(state):
            return Advance(kind="plan", next=orchestrator, sets_plan=True, stall=0)
        ledger = parse_progress_ledger(content) or {}
        final = str(ledger.get("final_answer") or "").strip()
        if ledger.get("is_request_satisfied") is True and final:
            return Advance(kind="final", next=None, done=True, final_answer=final)
        stalled = ledger.get("is_in_loop") is True or ledger.get("is_progress_being_made") is False
        stall = stall + 1 if stalled or not ledger else 0
        speaker = speaker_named(ledger.get("next_speaker"), names) or _fallback_speaker(
            state, names
        )
        return Advance(kind="instruction", next=speaker, stall=stall)

    return advance


def _magentic_prompt(state: Mapping[str, Any], agent: str) -> str | None:
    if agent == "Orchestrator":
        return prompt_text("magentic_plan" if is_planning(state) else "magentic_progress")
    return prompt_text("magentic_coder") if agent == "Coder" else None


_MAGENTIC_WORKER_SPECS = (
    AgentSpec("Coder", "magentic_coder"),
    AgentSpec("ComputerTerminal", None, tools=("python",)),
    AgentSpec("FileSurfer", None, tools=("read_file",)),
)
MAGENTIC = TeamSpec(
    name="magentic",
    agents=(AgentSpec("Orchestrator", "magentic_plan", orchestrates=True), *_MAGENTIC_WORKER_SPECS),
    first="Orchestrator",
    advance=ledger_advance("Orchestrator", _MAGENTIC_WORKER_SPECS),
    prompt_for=_magentic_prompt,
)

TEAMS: dict[str, TeamSpec] = {"math": MATH, "magentic": MAGENTIC}


def register_team(team: TeamSpec) -> TeamSpec:
    """Add a built-in team (branchpoint's own modules call this at import time)."""
    TEAMS[team.name] = team
    return team


def get_team(name: str) -> TeamSpec:
    """A built-in team by name (user teams: `agents.team_registry.resolve_team`)."""
    try:
        return TEAMS[name]
    except KeyError:
        raise BranchpointError(
            f"unknown team {name!r}; choose one of: {', '.join(TEAMS)}"
        ) from None


def _register_builtin_teams() -> None:
    """The code and program-of-thought teams live in their own modules, which import this one
    and add themselves to TEAMS (importing the modules, not names, is safe in either order)."""
    import branchpoint.agents.code_team
    import branchpoint.agents.pot_team  # noqa: F401


_register_builtin_teams()
