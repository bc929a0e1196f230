"""autogen teams run natively and through branchpoint give the same conversation.

Both sides run on the same `ReplayChatCompletionClient` scripts (one per agent and one for the
selector), so every model answer is fixed: the message sequence, the tool calls and the final
result must match exactly, and each script must be used up the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.messages import BaseChatMessage, ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient
from inprocess import run_in_process

from branchpoint import from_autogen
from branchpoint.agents.autogen_team import AutogenTeamError
from branchpoint.model import Step, Task

TASK = "Start from 2, add 3, then add 1. What is the result?"
TOOLS_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(call_id: str, a: int, b: int) -> CreateResult:
    """A scripted model answer that calls `add`."""
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=call_id, name="add", arguments=json.dumps({"a": a, "b": b}))],
        usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
        cached=False,
    )


def agents() -> list[AssistantAgent]:
    """A calculator with a FunctionTool (reflecting on its result), a writer and a checker."""
    calc = AssistantAgent(
        "Calc",
        ReplayChatCompletionClient(
            [call("c1", 2, 3), "2 + 3 = 5", call("c2", 5, 1), "5 + 1 = 6"], model_info=TOOLS_INFO
        ),
        tools=[add],
        reflect_on_tool_use=True,
        description="Adds numbers with the add tool.",
        system_message="Use the add tool.",
    )
    writer = AssistantAgent(
        "Writer",
        ReplayChatCompletionClient(["Now add 1.", "The result is 6."]),
        description="Writes the next instruction.",
    )
    checker = AssistantAgent(
        "Checker",
        ReplayChatCompletionClient(["Keep going.", "FINAL ANSWER: 6 TERMINATE"]),
        description="Checks the result and ends the task.",
    )
    return [calc, writer, checker]


def round_robin() -> RoundRobinGroupChat:
    """The round-robin team (a fresh one each call: scripts start from the top)."""
    stop = TextMentionTermination("TERMINATE") | MaxMessageTermination(12)
    return RoundRobinGroupChat(agents(), termination_condition=stop)


def selector() -> SelectorGroupChat:
    """The same agents with a scripted selector, in another order than round robin (one reply
    names nobody: autogen asks again, and so must branchpoint)."""
    picks = ["Calc", "Checker", "Writer", "Calc", "I pick nobody.", "Checker"]
    return SelectorGroupChat(
        agents(),
        model_client=ReplayChatCompletionClient(picks),
        termination_condition=TextMentionTermination("TERMINATE"),
    )


def native(team: Any) -> tuple[list[tuple[str, str]], list[tuple[str, Any, str]]]:
    """(speaker, message) after the task, and (tool, arguments, result), as autogen runs it."""
    result = asyncio.run(team.run(task=TASK))
    messages = [
        (m.source, m.to_text()) for m in result.messages[1:] if isinstance(m, BaseChatMessage)
    ]
    requests = [
        c for m in result.messages if isinstance(m, ToolCallRequestEvent) for c in m.content
    ]
    results = [
        r for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content
    ]
    assert len(requests) == len(results)
    tools = [(c.name, json.loads(c.arguments), r.content) for c, r in zip(requests, results)]
    return messages, tools


def ours(steps: list[Step]) -> tuple[list[tuple[str, str]], list[tuple[str, Any, str]]]:
    """The same two lists from branchpoint's steps."""
    messages = [(s.agent, s.content) for s in steps]
    tools = [(c.tool, json.loads(c.input), c.output) for s in steps for c in s.tool_calls]
    return messages, tools


@pytest.mark.parametrize("make_team", [round_robin, selector], ids=["round_robin", "selector"])
def test_branchpoint_runs_an_autogen_team_as_autogen_does(make_team: Any) -> None:
    expected_messages, expected_tools = native(make_team())
    final, steps = run_in_process(
        from_autogen(make_team()), Task(task_id="t", question=TASK, answer="6")
    )
    messages, tools = ours(steps)
    assert messages == expected_messages
    assert (
        tools == expected_tools == [("add", {"a": 2, "b": 3}, "5"), ("add", {"a": 5, "b": 1}, "6")]
    )
    assert messages[-1][1] == "FINAL ANSWER: 6 TERMINATE"
    assert final["done"] and final["final_answer"] == "6"
    assert [s.kind for s in steps][-1] == "final"


def test_a_selector_that_names_nobody_is_asked_again_and_its_choice_is_recorded() -> None:
    team = from_autogen(selector())
    assert team.first is None and team.selector is not None
    _, steps = run_in_process(team, Task(task_id="t", question=TASK))
    assert [s.agent for s in steps] == ["Calc", "Checker", "Writer", "Calc", "Checker"]


def test_autogen_component_json_keeps_names_prompts_tools_and_termination() -> None:
    data = json.loads(round_robin().dump_component().model_dump_json())
    team = from_autogen(data, name="adder")
    calc = team.agent("Calc")
    assert team.name == "adder" and team.agent_names == ("Calc", "Writer", "Checker")
    assert calc.prompt == "Use the add tool." and calc.reflect_on_tool_use
    assert [t.name for t in calc.function_tools] == ["add"]
    assert "def add" in calc.function_tools[0].component["config"]["source_code"]
    assert team.max_steps == 11  # MaxMessageTermination(12) counts the task message
    assert team.advance({"step": 0}, "Checker", "done. TERMINATE").done
    assert team.advance({"step": 10}, "Writer", "more").done
    assert not team.advance({"step": 3}, "Writer", "more").done
    assert (
        team.default_model == "team" and team.source is not None and team.source.kind == "autogen"
    )


def test_an_openai_client_becomes_the_openai_backend() -> None:
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    client = OpenAIChatCompletionClient(
        model="qwen", base_url="http://127.0.0.1:9/v1", api_key="x", model_info=TOOLS_INFO
    )
    team = RoundRobinGroupChat([AssistantAgent("A", client), AssistantAgent("B", client)])
    spec = from_autogen(team)
    assert spec.agent("A").model == "openai:qwen@http://127.0.0.1:9/v1"
    assert spec.agent("A").model_client is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda d: d.update(provider="autogen_agentchat.teams.MagenticOneGroupChat"),
            "MagenticOneGroupChat",
        ),
        (lambda d: d.update(provider="autogen_agentchat.teams.Swarm"), "Swarm"),
        (
            lambda d: d["config"]["participants"][0].update(provider="my.agents.CustomAgent"),
            "CustomAgent",
        ),
        (
            lambda d: d["config"]["participants"][1]["config"].update(
                handoffs=[{"target": "Calc"}]
            ),
            "handoffs",
        ),
    ],
    ids=["magentic_one", "swarm", "custom_agent", "handoffs"],
)
def test_unsupported_components_are_one_clear_error(change: Any, named: str) -> None:
    data = json.loads(round_robin().dump_component().model_dump_json())
    change(data)
    with pytest.raises(AutogenTeamError) as caught:
        from_autogen(data)
    message = str(caught.value)
    assert named in message and "not supported" in message and "\n" not in message
