"""An autogen team from its component JSON, end to end against a real model server.

The team (an AssistantAgent with a FunctionTool, and a checker) is written by autogen's own
`dump_component()`, pointed at llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving
the local model. branchpoint runs it with no --model (each agent on its own client), records
steps, LLM calls and tool calls, forks it at a middle step with an `instruct`, and debugs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
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


def bp(*args: str, timeout: float = 900) -> str:
    """The CLI in a fresh process; fails the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "branchpoint", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "BRANCHPOINT_LLM_TIMEOUT": "600"},  # a busy 2-core machine is slow
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def one(db: Path, sql: str) -> tuple:
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return row


@pytest.mark.timeout(1800)
def test_autogen_json_team_runs_forks_and_debugs_on_a_real_server(
    tmp_path: Path, llama_server: str
) -> None:
    team, tasks, db = tmp_path / "adder.json", tmp_path / "tasks.jsonl", tmp_path / "t.duckdb"
    write_team(team, llama_server)
    tasks.write_text(
        json.dumps({"question": "What is 17 + 25?", "answer": "17 + 25 = 42\n#### 42"})
    )
    bp("run", "--team", f"autogen:{team}", "--tasks", str(tasks), "--db", str(db))

    run_id, status, model, n_steps = one(db, "SELECT run_id, status, model, n_steps FROM runs")
    assert status in ("succeeded", "failed") and model == "team" and n_steps >= 2
    agents = one(db, f"SELECT list(agent ORDER BY step) FROM steps WHERE run_id = '{run_id}'")[0]
    assert agents[:2] == ["Calculator", "Checker"]
    calls, served = one(
        db, f"SELECT count(*), count(DISTINCT model) FROM llm_calls WHERE run_id = '{run_id}'"
    )
    assert calls >= 2 and served == 1  # the server's model, from the team's own client config
    tool, ok = one(db, f"SELECT tool, ok FROM tool_calls WHERE run_id = '{run_id}' LIMIT 1")
    assert tool == "add" and ok

    instruct = tmp_path / "iv.json"
    instruct.write_text(json.dumps({"kind": "instruct", "instruction": "Answer 42 only."}))
    bp("fork", run_id, "--step", "1", "--intervention", str(instruct), "--db", str(db))
    fork_status, fork_step = one(
        db, f"SELECT status, fork_step FROM runs WHERE parent_run_id = '{run_id}'"
    )
    assert fork_status in ("succeeded", "failed") and fork_step == 1

    bp("debug", run_id, "--methods", "all_at_once", "--judge", llama_server, "--repeats", "1",
       "--db", str(db))  # fmt: skip
    verdicts = one(db, f"SELECT count(*) FROM verdicts WHERE run_id = '{run_id}'")[0]
    assert verdicts >= 1
