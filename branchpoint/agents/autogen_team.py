"""Existing autogen-agentchat teams, as they are: a `RoundRobinGroupChat` or `SelectorGroupChat`
object, or its component JSON (`team.dump_component()`, what AutoGen Studio exports), compiled
to a branchpoint team with one graph node per agent turn.

Each `AssistantAgent` keeps its name, description, system message, `FunctionTool`s (their
source travels in the component) and `reflect_on_tool_use`; an `OpenAIChatCompletionClient`
becomes the `openai:` backend with its model and base URL (so its calls are recorded, replayed
and the endpoint checked before a run), any other model client is loaded from its component as
it is. Termination conditions become the team's termination. What cannot be a graph of agent
turns is refused with one line naming the component.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from branchpoint.agents import routing
from branchpoint.agents.teams import AgentSpec, TeamSpec, own_prompts
from branchpoint.errors import BranchpointError
from branchpoint.model import FunctionToolSpec, SelectorSpec, TeamSource

TEAM_MODEL = "team"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
SUPPORTED = "RoundRobinGroupChat or SelectorGroupChat of AssistantAgents"


class AutogenTeamError(BranchpointError):
    """An autogen team (or component JSON) that branchpoint cannot run."""


def _class(component: dict[str, Any]) -> str:
    return str(component.get("provider", "")).rsplit(".", 1)[-1]


def _unsupported(where: str, what: str, why: str = "") -> AutogenTeamError:
    reason = f" ({why})" if why else ""
    return AutogenTeamError(
        f"autogen team {where}: {what} is not supported{reason}; branchpoint runs a {SUPPORTED} "
        "with FunctionTools (see README: Bring your own team)"
    )


def from_autogen(team: Any, name: str | None = None) -> TeamSpec:
    """A branchpoint team from an autogen team object, its ComponentModel, or its JSON dict."""
    if isinstance(team, str | Path):
        return load_autogen_file(team)
    if hasattr(team, "_selector_func") and (
        getattr(team, "_selector_func", None) or getattr(team, "_candidate_func", None)
    ):
        raise _unsupported(type(team).__name__, "selector_func / candidate_func", "code, not data")
    if hasattr(team, "dump_component"):
        try:
            team = team.dump_component()
        except (TypeError, ValueError, NotImplementedError, AttributeError) as exc:
            raise _unsupported(
                type(team).__name__, "a team that cannot dump_component()", str(exc)
            ) from None
    if hasattr(team, "model_dump_json"):
        team = json.loads(team.model_dump_json())
    if not isinstance(team, dict):
        raise AutogenTeamError(
            f"from_autogen takes an autogen team or its component JSON, not {type(team).__name__}"
        )
    return team_from_component(team, name=name, where=name or str(team.get("label", "team")))


def load_autogen_file(path: str | Path) -> TeamSpec:
    """The team in an autogen component JSON file (named after the file)."""
    file = Path(path)
    if not file.is_file():
        raise AutogenTeamError(f"autogen team file not found: {file}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise AutogenTeamError(
            f"autogen team {file} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    if not isinstance(data, dict):
        raise AutogenTeamError(f"autogen team {file}: expected a component object with a provider")
    return team_from_component(data, name=file.stem, where=str(file))


def team_from_component(data: dict[str, Any], name: str | None, where: str) -> TeamSpec:
    """Compile a team component (a dict as `dump_component()` gives it)."""
    kind = _class(data)
    if kind not in ("RoundRobinGroupChat", "SelectorGroupChat"):
        raise _unsupported(where, kind or "a component without a provider")
    config = data.get("config") or {}
    agents = tuple(_agent(p, where) for p in config.get("participants") or [])
    if not agents:
        raise AutogenTeamError(f"autogen team {where}: it has no participants")
    names = tuple(a.name for a in agents)
    termination = _termination(config.get("termination_condition"), where, names)
    if config.get("max_turns"):
        limit = min(termination.max_turns or config["max_turns"], config["max_turns"])
        termination = replace(termination, max_turns=limit)
    source = TeamSource(
        kind="autogen", ref=where, text=json.dumps({"name": name, "component": data})
    )
    team = TeamSpec(
        name=name or str(config.get("name") or kind),
        agents=agents,
        first=names[0],
        advance=routing.round_robin(names, termination),
        prompt_for=own_prompts(agents),
        max_steps=termination.max_turns,
        default_model=TEAM_MODEL,
        source=source,
    )
    if kind == "RoundRobinGroupChat":
        return team
    model, component = _model(config.get("model_client"), where, "the selector's model_client")
    selector = SelectorSpec(
        prompt=config.get("selector_prompt") or "",
        participants=names,
        descriptions=tuple(a.description for a in agents),
        allow_repeated_speaker=bool(config.get("allow_repeated_speaker")),
        max_attempts=int(config.get("max_selector_attempts") or 3),
        model=model,
        model_client=component,
    )
    return replace(team, first=None, advance=routing.selected(termination), selector=selector)


def team_from_record(source: TeamSource) -> TeamSpec:
    """The team a run recorded (its component JSON)."""
    record = json.loads(source.text or "{}")
    return team_from_component(record["component"], name=record.get("name"), where=source.ref)


def _agent(component: dict[str, Any], where: str) -> AgentSpec:
    kind = _class(component)
    if kind != "AssistantAgent":
        raise _unsupported(where, f"participant {kind or '(no provider)'}", "custom agent classes")
    config = component.get("config") or {}
    name = str(config.get("name"))
    if config.get("handoffs"):
        raise _unsupported(where, f"agent {name}'s handoffs", "Swarm-style handoffs")
    if config.get("memory"):
        raise _unsupported(where, f"agent {name}'s memory")
    if int(config.get("max_tool_iterations") or 1) > 1:
        raise _unsupported(where, f"agent {name}'s max_tool_iterations > 1")
    if config.get("tool_call_summary_format", "{result}") != "{result}":
        raise _unsupported(where, f"agent {name}'s tool_call_summary_format")
    model, client = _model(config.get("model_client"), where, f"agent {name}'s model_client")
    return AgentSpec(
        name=name,
        prompt=config.get("system_message") or "",
        sees_plan=False,
        description=str(config.get("description") or ""),
        function_tools=_tools(config, name, where),
        reflect_on_tool_use=bool(config.get("reflect_on_tool_use")),
        model=model,
        model_client=client,
    )


def _tools(config: dict[str, Any], agent: str, where: str) -> tuple[FunctionToolSpec, ...]:
    tools: list[dict[str, Any]] = list(config.get("tools") or [])
    for bench in config.get("workbench") or []:
        if _class(bench) not in ("StaticWorkbench", "StaticStreamWorkbench"):
            raise _unsupported(where, f"agent {agent}'s workbench {_class(bench)}")
        tools.extend((bench.get("config") or {}).get("tools") or [])
    specs = []
    for tool in tools:
        if _class(tool) != "FunctionTool":
            raise _unsupported(where, f"agent {agent}'s tool {_class(tool)}", "FunctionTools only")
        specs.append(FunctionToolSpec(name=str(tool["config"]["name"]), component=tool))
    return tuple(specs)


def _model(
    component: dict[str, Any] | None, where: str, what: str
) -> tuple[str | None, dict[str, Any] | None]:
    """An OpenAI client as an `openai:` model spec; any other client as its component."""
    if not component:
        raise AutogenTeamError(f"autogen team {where}: {what} is missing")
    if _class(component) == "OpenAIChatCompletionClient":
        config = component.get("config") or {}
        base_url = str(config.get("base_url") or OPENAI_DEFAULT_URL).rstrip("/")
        return f"openai:{config['model']}@{base_url}", None
    return None, component


def _termination(
    component: dict[str, Any] | None, where: str, names: tuple[str, ...]
) -> routing.Termination:
    if not component:
        return routing.Termination()
    kind = _class(component)
    config = component.get("config") or {}
    if kind == "OrTerminationCondition":
        parts = [_termination(c, where, names) for c in config.get("conditions") or []]
        return _either(parts, where)
    if kind == "TextMentionTermination":
        sources = tuple(config["sources"]) if config.get("sources") else None
        return routing.Termination(texts=(str(config["text"]),), sources=sources)
    if kind == "MaxMessageTermination":
        if config.get("include_agent_event"):
            raise _unsupported(where, "MaxMessageTermination with include_agent_event")
        # autogen counts the task message too: N messages are N - 1 agent turns
        return routing.Termination(max_turns=max(1, int(config["max_messages"]) - 1))
    if kind == "SourceMatchTermination":
        return routing.Termination(stop_after=tuple(config.get("sources") or ()))
    raise _unsupported(where, f"termination condition {kind}")


def _either(parts: list[routing.Termination], where: str) -> routing.Termination:
    texts = tuple(t for p in parts for t in p.texts)
    sources = {p.sources for p in parts if p.texts}
    if len(sources) > 1:
        raise _unsupported(where, "TextMentionTerminations with different sources")
    limits = [p.max_turns for p in parts if p.max_turns is not None]
    return routing.Termination(
        texts=texts,
        sources=next(iter(sources), None),
        max_turns=min(limits) if limits else None,
        stop_after=tuple(a for p in parts for a in p.stop_after),
    )
