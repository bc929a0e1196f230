"""A user team in plain Python: an Adder that calls a tool and a Checker that answers.

Its agents run on scripted autogen clients (every answer is the same, so any host on any node
gives the same turn), which keeps the cluster test free of a model; the `add` tool is imported
on whichever host runs the Adder's turn, from the folder the run recorded.
"""

from __future__ import annotations

import json
from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from branchpoint.agents.function_tools import tool_spec
from branchpoint.agents.routing import Termination, round_robin
from branchpoint.agents.teams import AgentSpec, TeamSpec

TOOLS_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def scripted(answer: str | CreateResult, tools: bool = False) -> dict[str, Any]:
    """An autogen client component that gives the same answer to every call."""
    info = TOOLS_INFO if tools else {**TOOLS_INFO, "function_calling": False}
    client = ReplayChatCompletionClient([answer] * 50, model_info=info)
    return client.dump_component().model_dump(mode="json")


ADD_CALL = CreateResult(
    finish_reason="function_calls",
    content=[FunctionCall(id="call-1", name="add", arguments=json.dumps({"a": 2, "b": 3}))],
    usage=RequestUsage(prompt_tokens=12, completion_tokens=6),
    cached=False,
)
PROMPTS = {"Adder": "Add the numbers with the add tool.", "Checker": "Give the final answer."}

TEAM = TeamSpec(
    name="pair",
    agents=(
        AgentSpec(
            "Adder",
            PROMPTS["Adder"],
            function_tools=(tool_spec("userteams.tools:add"),),
            model_client=scripted(ADD_CALL, tools=True),
        ),
        AgentSpec("Checker", PROMPTS["Checker"], model_client=scripted("FINAL ANSWER: 5")),
    ),
    first="Adder",
    advance=round_robin(["Adder", "Checker"], Termination(texts=("FINAL ANSWER",), max_turns=6)),
    prompt_for=lambda state, agent: PROMPTS[agent],
    default_model="team",
)


def make_team() -> TeamSpec:
    """The same team from a function (an import path may name either)."""
    return TEAM
