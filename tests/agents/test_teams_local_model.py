"""An autogen team from its component JSON, end to end against a real model server.

The team (an AssistantAgent with a FunctionTool, and a checker) is written by autogen's own
`dump_component()`, pointed at llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving
the local model. branchpoint runs it with no --model (each agent on its own client), records
steps, LLM calls and tool calls, forks it at a middle step with an `instruct`, and debugs it
(through the Python API in process: no Ray, which a busy 2-core machine is slow to start).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import ModelInfo
from autogen_ext.models.openai import OpenAIChatCompletionClient

pytestmark = [pytest.mark.local_model, pytest.mark.ray]  # the CLI runs start a local Ray

TOOLS_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def add(a: int, b: int) -> int:
    """Add two integers and return their sum."""
    return a + b


def write_team(path: Path, server: str) -> None:
    """The autogen team's component JSON, as AutoGen Studio would export it."""
    name, base_url = server.removeprefix("openai:").split("@", 1)
    client = OpenAIChatCompletionClient(
        model=name, base_url=base_url, api_key="not-needed", model_info=TOOLS_INFO
    )
    calc = AssistantAgent(
        "Calculator",
        client,
        tools=[add],
        system_message="You add numbers. Always call the add tool with the two numbers.",
        description="Adds two numbers with the add tool.",
    )
    checker = AssistantAgent(
        "Checker",
        client,
        system_message="Read the Calculator's result. Reply with one line: FINAL ANSWER: <number>",
        description="States the final answer.",
    )
    stop = TextMentionTermination("FINAL ANSWER") | MaxMessageTermination(5)
    team = RoundRobinGroupChat([calc, checker], termination_condition=stop)
    path.write_text(team.dump_component().model_dump_json(indent=2))


@pytest.mark.timeout(2400)
def test_autogen_json_team_runs_forks_and_debugs_on_a_real_server(
    tmp_path: Path, llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import branchpoint as bp
    from branchpoint.model import Task

    monkeypatch.setenv("BRANCHPOINT_LLM_TIMEOUT", "600")  # a busy 2-core machine is slow
    team = tmp_path / "adder.json"
    write_team(team, llama_server)
    task = Task(task_id="add", question="Use the add tool to add 17 and 25.", answer="42")
    with bp.session(tmp_path / "t.duckdb", team=f"autogen:{team}", model="team") as s:
        [run] = s.run(task)
        assert run.status in ("succeeded", "failed") and run.model == "team", run.error
        steps = s.sql(f"SELECT agent FROM steps WHERE run_id = '{run.run_id}' ORDER BY step")
        assert [r["agent"] for r in steps][:2] == ["Calculator", "Checker"]
        [calls] = s.sql(
            f"SELECT count(*) AS n, list(DISTINCT model) AS models FROM llm_calls "
            f"WHERE run_id = '{run.run_id}'"
        )
        assert calls["n"] >= 2 and calls["models"] == [llama_server]  # the team's own client
        # The model chooses between a tool call and a message (llama-cpp-python's grammar lets
        # it); every call it made must be in tool_calls. The cluster test and the parity tests
        # check tool calls with scripted clients, where the call is certain.
        completions = s.sql(
            f"SELECT completion FROM llm_calls WHERE run_id = '{run.run_id}' "
            "AND agent = 'Calculator'"
        )
        called = sum(r["completion"].count("FunctionCall(") for r in completions)
        tools = s.sql(f"SELECT tool, ok FROM tool_calls WHERE run_id = '{run.run_id}'")
        assert len(tools) == called and all(t["tool"] == "add" for t in tools)

        [fork] = s.fork(run, bp.instruct(1, "State the Calculator's sum as the final answer."))
        assert fork.status in ("succeeded", "failed") and fork.fork_step == 1, fork.error

        result = s.debug(run, methods=["all_at_once"], judge=llama_server, repeats=1, concurrency=2)
        # Every hypothesis the judge makes is tested to a verdict; when the 0.5B judge makes none
        # (its answer does not parse), the report says so as a typed failure of the method.
        [report] = result.reports
        hypotheses = s.sql(f"SELECT hypothesis_id FROM hypotheses WHERE run_id = '{run.run_id}'")
        verdicts = s.sql(f"SELECT label FROM verdicts WHERE run_id = '{run.run_id}'")
        assert len(verdicts) == len(hypotheses) == len(report.tests)
        assert report.tests or any(f.method == "all_at_once" for f in report.failures)
