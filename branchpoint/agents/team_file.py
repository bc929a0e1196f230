"""Declarative team files (TOML or YAML): agents, prompts, tools, routing, termination, scorer.

A file is validated by the pydantic model `TeamFile` (versioned) and compiled to a `TeamSpec`.
Prompts are inline (`system_message`) or paths relative to the file (`prompt`); tools are the
built-in `python` / `read_file` or import paths of Python functions (resolved against the file's
folder first). Every mistake is a `TeamFileError` whose one line names the field and the fix.
What a run records is the validated file as JSON with its prompts inlined, so a fork resolves
the same team even after the file or its prompts changed.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from branchpoint.agents import routing
from branchpoint.agents.function_tools import ImportPathError, import_object, tool_spec
from branchpoint.agents.scorers import SCORERS
from branchpoint.agents.teams import (
    AgentSpec,
    TeamSpec,
    is_planning,
    ledger_advance,
    own_prompts,
)
from branchpoint.errors import BranchpointError, first_line
from branchpoint.model import FunctionToolSpec, SelectorSpec, TeamSource

BUILTIN_TOOLS = ("python", "read_file")
TEAM_FILE_SUFFIXES = (".toml", ".yaml", ".yml")
DEFAULT_SELECTOR_PROMPT = (
    "You are in a role play game. The following roles are available:\n{roles}.\n"
    "Read the following conversation. Then select the next role from {participants} to play. "
    "Only return the role.\n\n{history}\n\nRead the above conversation. Then select the next "
    "role from {participants} to play. Only return the role.\n"
)
LEDGER_PLAN_PROMPT = (
    "You are the Orchestrator of a team with these workers:\n{roles}\n"
    'Write the task ledger: first "FACTS:" (what the question gives and what must be found), '
    'then "PLAN:" a numbered list of at most 4 steps saying which worker does what.\n'
    'If the answer is already certain, also write "FINAL ANSWER: <answer>".'
)
LEDGER_PROGRESS_PROMPT = (
    "You are the Orchestrator of a team with these workers: {names}.\n"
    "Decide the next move. Reply with one JSON object and nothing else:\n"
    '{{"is_request_satisfied": true/false, "final_answer": "<answer or empty>", '
    '"is_in_loop": true/false, "is_progress_being_made": true/false, '
    '"next_speaker": "{choices}", "instruction": "<what the next speaker must do>"}}'
)


class TeamFileError(BranchpointError):
    """A team file that cannot be read, validated or resolved."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentEntry(_Entry):
    """One agent. With neither `system_message` nor `prompt` it calls no model: its turn runs
    its built-in tool (`python`: the newest code block; `read_file`: the workspace files)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    system_message: str | None = None
    prompt: str | None = None  # a file with the system message, relative to the team file
    description: str = ""
    tools: list[str] = Field(default_factory=list)
    reflect_on_tool_use: bool = False
    model: str | None = None  # its own model spec, used when the run's --model is `team`
    sees_plan: bool = True
    # Stop sequences of its model calls (at most 4, as OpenAI-compatible servers accept), e.g.
    # "\n```\n" to end a reply at its code block's closing fence.
    stop: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=4)


class SelectorEntry(_Entry):
    """`routing = "selector"`: a model picks each speaker, as in autogen's SelectorGroupChat."""

    prompt: str = DEFAULT_SELECTOR_PROMPT
    allow_repeated_speaker: bool = False
    max_attempts: int = Field(default=3, ge=1)
    model: str | None = None


class LedgerEntry(_Entry):
    """`routing = "ledger"`: the orchestrator plans, then routes by its progress ledger."""

    orchestrator: str | None = None  # default: the first agent
    plan_prompt: str = LEDGER_PLAN_PROMPT
    progress_prompt: str = LEDGER_PROGRESS_PROMPT


class TerminationEntry(_Entry):
    """The run ends when a message mentions one of `text` or after `max_steps` turns."""

    text: list[str] = Field(default_factory=lambda: ["FINAL ANSWER"])
    sources: list[str] | None = None
    max_steps: int | None = Field(default=None, ge=1)


class TeamFile(_Entry):
    """A team file, version 1."""

    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    agents: list[AgentEntry] = Field(min_length=1)
    routing: str = "round_robin"  # round_robin | selector | ledger | advance:pkg.module:function
    first: str | None = None
    selector: SelectorEntry = Field(default_factory=SelectorEntry)
    ledger: LedgerEntry = Field(default_factory=LedgerEntry)
    termination: TerminationEntry = Field(default_factory=TerminationEntry)
    scorer: str = "numeric"  # numeric | exact | humaneval | pkg.module:function


def _fail(where: str, field: str, problem: str) -> TeamFileError:
    return TeamFileError(f"team file {where}: {field}: {problem}")


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "(top level)"


def parse_team_file(text: str, where: str, suffix: str) -> TeamFile:
    """Validate a team file's text (TOML, or YAML for .yaml/.yml, or JSON for a recorded one)."""
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        first = first_line(exc)
        raise TeamFileError(
            f"team file {where} is not valid {suffix[1:].upper()}: {first}"
        ) from None
    if not isinstance(data, dict):
        raise TeamFileError(
            f"team file {where}: expected a table of fields (version, name, agents)"
        )
    try:
        return TeamFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        hint = _hint(error)
        raise _fail(where, _field_name(tuple(error["loc"])), error["msg"] + hint) from None


def _hint(error: Any) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "missing" and loc == ("version",):
        return "; add `version = 1`"
    if error["type"] == "missing" and loc == ("agents",):
        return "; add at least one [[agents]] entry with a name"
    if error["type"] == "extra_forbidden":
        return "; remove it or check its spelling"
    return ""


def load_team_file(path: str | Path) -> TeamSpec:
    """The team a file defines, resolved and checked (prompts read, tools imported)."""
    file = Path(path)
    if not file.is_file():
        raise TeamFileError(f"team file not found: {file}")
    folder = file.resolve().parent
    spec = parse_team_file(read_utf8(file, "team file"), str(file), file.suffix.lower())
    inlined = _inline_prompts(spec, folder, str(file))
    source = TeamSource(
        kind="file", ref=str(file), text=inlined.model_dump_json(), code_path=str(folder)
    )
    return compile_team_file(inlined, str(file), str(folder), source)


def read_utf8(file: Path, what: str) -> str:
    """A file's text; a TeamFileError naming the file if it is not UTF-8 (a binary file, or one
    saved as UTF-16)."""
    try:
        return file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TeamFileError(f"{what} {file} is not UTF-8 text; save it as UTF-8") from None


def syntax_problem(exc: SyntaxError) -> str:
    """Where a Python file does not parse, in one line: file, line and the parser's message."""
    where = exc.filename or "<unknown file>"
    if exc.lineno:
        where += f", line {exc.lineno}"
    return f"{where}: {type(exc).__name__}: {exc.msg}; fix the code there"


def _inline_prompts(spec: TeamFile, folder: Path, where: str) -> TeamFile:
    agents = []
    for i, agent in enumerate(spec.agents):
        if agent.prompt is not None:
            if agent.system_message is not None:
                raise _fail(where, f"agents[{i}]", "give system_message or prompt, not both")
            prompt_path = folder / agent.prompt
            if not prompt_path.is_file():
                raise _fail(where, f"agents[{i}].prompt", f"file not found: {prompt_path}")
            agent = agent.model_copy(
                update={
                    "system_message": read_utf8(prompt_path, "prompt file").strip(),
                    "prompt": None,
                }
            )
        agents.append(agent)
    return spec.model_copy(update={"agents": agents})


def team_from_record(source: TeamSource) -> TeamSpec:
    """The team a run recorded (its file as JSON with the prompts inlined)."""
    spec = parse_team_file(source.text or "", source.ref, ".json")
    return compile_team_file(spec, source.ref, source.code_path, source)


def _tools(
    agent: AgentEntry, i: int, where: str, code_path: str | None
) -> tuple[tuple[str, ...], tuple[FunctionToolSpec, ...]]:
    builtin, functions = [], []
    for j, tool in enumerate(agent.tools):
        if tool in BUILTIN_TOOLS:
            builtin.append(tool)
            continue
        if ":" not in tool:
            raise _fail(
                where,
                f"agents[{i}].tools[{j}]",
                f"unknown tool {tool!r}; use {' or '.join(BUILTIN_TOOLS)}, or an import path "
                "pkg.module:function",
            )
        try:
            functions.append(tool_spec(tool, code_path))
        except ImportPathError as exc:
            raise _fail(where, f"agents[{i}].tools[{j}]", f"unknown tool: {exc}") from None
        except SyntaxError as exc:
            raise _fail(where, f"agents[{i}].tools[{j}]", syntax_problem(exc)) from None
    return tuple(builtin), tuple(functions)


def _agent(agent: AgentEntry, i: int, where: str, code_path: str | None) -> AgentSpec:
    builtin, functions = _tools(agent, i, where, code_path)
    if agent.system_message is None and (functions or not builtin):
        raise _fail(
            where,
            f"agents[{i}]",
            "an agent without system_message or prompt calls no model, so it needs a built-in "
            "tool (python or read_file) and no function tools; add a system_message",
        )
    return AgentSpec(
        name=agent.name,
        prompt=agent.system_message,
        tools=builtin,
        sees_plan=agent.sees_plan,
        description=agent.description,
        function_tools=functions,
        reflect_on_tool_use=agent.reflect_on_tool_use,
        model=agent.model,
        stop=tuple(agent.stop),
    )


def _known(where: str, field: str, name: str | None, names: list[str]) -> None:
    if name is not None and name not in names:
        raise _fail(where, field, f"no agent named {name!r} (agents: {', '.join(names)})")


def compile_team_file(
    spec: TeamFile, where: str, code_path: str | None, source: TeamSource | None
) -> TeamSpec:
    """A TeamSpec from a validated file (prompts already inlined)."""
    names = [a.name for a in spec.agents]
    if len(set(names)) != len(names):
        raise _fail(where, "agents", "two agents have the same name; names must be unique")
    agents = tuple(_agent(a, i, where, code_path) for i, a in enumerate(spec.agents))
    _known(where, "first", spec.first, names)
    for j, name in enumerate(spec.termination.sources or []):
        _known(where, f"termination.sources[{j}]", name, names)
    termination = routing.Termination(
        texts=tuple(spec.termination.text),
        sources=tuple(spec.termination.sources) if spec.termination.sources else None,
        max_turns=spec.termination.max_steps,
    )
    tool_only = {a.name for a in agents if not a.calls_model}
    team = TeamSpec(
        name=spec.name,
        agents=agents,
        first=spec.first or names[0],
        advance=routing.round_robin(names, termination, tool_only),
        prompt_for=own_prompts(agents),
        max_steps=spec.termination.max_steps,
        score=_scorer(spec.scorer, where, code_path),
        default_model="team" if all(a.model for a in agents if a.calls_model) else None,
        source=source,
    )
    return _routed(team, spec, where, code_path, termination, tool_only)


def _routed(
    team: TeamSpec,
    spec: TeamFile,
    where: str,
    code_path: str | None,
    termination: routing.Termination,
    tool_only: set[str],
) -> TeamSpec:
    names = [a.name for a in team.agents]
    if spec.routing == "round_robin":
        return team
    if spec.routing == "selector":
        if len(names) < 2:
            raise _fail(where, "routing", "a selector team needs at least two agents")
        selector = SelectorSpec(
            prompt=spec.selector.prompt,
            participants=tuple(names),
            descriptions=tuple(a.description for a in team.agents),
            allow_repeated_speaker=spec.selector.allow_repeated_speaker,
            max_attempts=spec.selector.max_attempts,
            model=spec.selector.model,
        )
        advance = routing.selected(termination, tool_only)
        return replace(team, first=spec.first, advance=advance, selector=selector)
    if spec.routing == "ledger":
        return _ledger(team, spec, where)
    if spec.routing.startswith("advance:"):
        path = spec.routing.removeprefix("advance:")
        advance = _function(path, code_path, where, "routing", "state, agent, content")
        return replace(team, advance=advance)
    raise _fail(
        where,
        "routing",
        f"unknown routing {spec.routing!r}; use round_robin, selector, ledger or "
        "advance:pkg.module:function",
    )


def _ledger(team: TeamSpec, spec: TeamFile, where: str) -> TeamSpec:
    names = [a.name for a in team.agents]
    orchestrator = spec.ledger.orchestrator or names[0]
    _known(where, "ledger.orchestrator", orchestrator, names)
    workers = tuple(a for a in team.agents if a.name != orchestrator)
    if not workers:
        raise _fail(where, "agents", "a ledger team needs workers besides its orchestrator")
    roles = "\n".join(f"{w.name}: {w.description}".strip() for w in workers)
    worker_names = ", ".join(w.name for w in workers)
    plan = spec.ledger.plan_prompt.format(roles=roles, names=worker_names)
    progress = spec.ledger.progress_prompt.format(
        roles=roles, names=worker_names, choices="|".join(w.name for w in workers)
    )
    agents = tuple(
        replace(a, orchestrates=True, prompt=plan) if a.name == orchestrator else a
        for a in team.agents
    )
    own = own_prompts(team.agents)

    def prompt_for(state: Any, agent: str) -> str | None:
        if agent == orchestrator:
            return plan if is_planning(state) else progress
        return own(state, agent)

    return replace(
        team,
        agents=agents,
        first=orchestrator,
        advance=ledger_advance(orchestrator, workers),
        prompt_for=prompt_for,
    )


def _scorer(name: str, where: str, code_path: str | None) -> Any:
    if name in SCORERS:
        return SCORERS[name]
    if ":" not in name:
        raise _fail(
            where,
            "scorer",
            f"unknown scorer {name!r}; use {', '.join(SCORERS)} or pkg.module:function",
        )
    return _function(name, code_path, where, "scorer", "task, final_answer, steps")


def _function(path: str, code_path: str | None, where: str, field: str, takes: str) -> Any:
    """The function an import path in `field` names (it must import and be callable)."""
    try:
        found = import_object(path, code_path)
    except ImportPathError as exc:
        raise _fail(where, field, str(exc)) from None
    except SyntaxError as exc:
        raise _fail(where, field, syntax_problem(exc)) from None
    if not callable(found):
        raise _fail(where, field, f"{path!r} is not a function ({takes})")
    return found
