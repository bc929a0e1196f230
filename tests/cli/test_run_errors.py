"""`run` and `teams` refuse bad team files, team modules, task files and checkpointers with one
line and exit code 2, never a traceback, and make no trace database on the way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from cli_process import branchpoint, one_line_error

SIM = ("--model", "sim", "--in-process", "--limit", "1")
RANDOM_BYTES = bytes(range(128, 256)) * 2  # no UTF-8 decoder accepts these

# Each test starts the command as a process: not the in-process fast tier.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("team", "content"),
    [
        ("teams/bin.yaml", RANDOM_BYTES),
        ("teams/u16.toml", 'version = 1\nname = "t"\n'.encode("utf-16")),
        ("autogen:teams/bin.json", RANDOM_BYTES),
        ("teams/bin.json", RANDOM_BYTES),
    ],
)
@pytest.mark.parametrize("command", ["run", "teams"])
def test_a_team_file_that_is_not_utf8_is_one_line_naming_it(
    team: str, content: bytes, command: str, tmp_path: Path
) -> None:
    file = tmp_path / team.removeprefix("autogen:")
    file.parent.mkdir()
    file.write_bytes(content)
    args = (
        ("run", "--team", team, *SIM, "--db", "x.duckdb") if command == "run" else ("teams", team)
    )
    one_line_error(branchpoint(*args, cwd=tmp_path), team.removeprefix("autogen:"), "not UTF-8")
    assert not (tmp_path / "x.duckdb").exists()


def test_a_team_prompt_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "prompt.txt").write_bytes(RANDOM_BYTES)
    (tmp_path / "team.toml").write_text(
        'version = 1\nname = "t"\n[[agents]]\nname = "a"\nprompt = "prompt.txt"\n'
    )
    one_line_error(branchpoint("teams", "team.toml", cwd=tmp_path), "prompt.txt", "not UTF-8")


def test_a_team_module_with_a_syntax_error_is_one_line_naming_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "syn.py").write_text("x = 1\ndef team(:\n")
    result = branchpoint("run", "--team", "syn:team", *SIM, "--db", "x.duckdb", cwd=tmp_path)
    one_line_error(result, "syn.py", "line 2", "SyntaxError")
    assert not (tmp_path / "x.duckdb").exists()


def test_a_team_file_tool_with_a_syntax_error_is_one_line_naming_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "badtools.py").write_text("def add(:\n")
    (tmp_path / "team.toml").write_text(
        'version = 1\nname = "t"\n[[agents]]\nname = "a"\nsystem_message = "hi"\n'
        'tools = ["badtools:add"]\n'
    )
    one_line_error(
        branchpoint("teams", "team.toml", cwd=tmp_path), "tools[0]", "badtools.py", "line 1"
    )


def _humaneval_like(path: Path) -> None:
    task = {"task_id": "HumanEval/0", "prompt": "def f():\n", "entry_point": "f",
            "canonical_solution": "    return 1\n", "test": "def check(f):\n    assert f() == 1\n"}  # fmt: skip
    with gzip.open(path, "wt") as out:
        out.write(json.dumps(task) + "\n")


@pytest.mark.parametrize("kind", ["humaneval", "nan"])
def test_sim_refuses_a_task_file_whose_every_task_it_leaves_out(kind: str, tmp_path: Path) -> None:
    if kind == "humaneval":
        tasks = tmp_path / "he.jsonl.gz"
        _humaneval_like(tasks)
    else:
        tasks = tmp_path / "nan.jsonl"
        tasks.write_text(json.dumps({"question": "q", "answer": "NaN"}) + "\n")
    result = branchpoint(
        "run", "--team", "math", "--tasks", str(tasks), *SIM, "--db", "he.duckdb", cwd=tmp_path
    )
    one_line_error(result, "sim can follow none", "--tasks builtin", "--model")
    assert sorted(p.name for p in tmp_path.iterdir()) == [tasks.name]


def test_an_unknown_checkpointer_is_refused_before_the_trace_database_is_made(
    tmp_path: Path,
) -> None:
    result = branchpoint(
        "run", "--team", "math", *SIM, "--checkpointer", "bogus", "--db", "r.duckdb", cwd=tmp_path
    )
    one_line_error(result, "bogus")
    assert list(tmp_path.iterdir()) == []
