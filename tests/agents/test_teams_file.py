"""Team files: what a valid file compiles to, and one line naming the field for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchpoint.agents.team_file import TeamFileError, load_team_file, team_from_record
from branchpoint.agents.team_registry import resolve_team

USERTEAMS = Path(__file__).resolve().parents[1] / "userteams"

AGENTS = """
[[agents]]
name = "Solver"
system_message = "Solve it."
description = "Solves."
tools = ["python"]

[[agents]]
name = "Checker"
system_message = "Check it. Say FINAL ANSWER: <number>."
description = "Checks."
"""


def write(tmp_path: Path, body: str, name: str = "team.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_a_team_file_compiles_prompts_tools_routing_termination_and_scorer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(USERTEAMS.parent))
    team = load_team_file(USERTEAMS / "team.toml")
    adder = team.agent("Adder")
    assert team.name == "filepair" and team.first == "Adder"
    assert adder.prompt == "You add numbers. Always call the add tool."  # read from prompts/
    assert [(t.name, t.import_path) for t in adder.function_tools] == [
        ("add", "userteams.tools:add")
    ]
    assert team.advance({"step": 0}, "Adder", "5").next == "Checker"
    end = team.advance({"step": 1}, "Checker", "FINAL ANSWER: 5")
    assert (end.done, end.final_answer, end.kind) == (True, "5", "final")
    assert team.advance({"step": 5}, "Adder", "5").done  # max_steps = 6
    assert team.source is not None and team.source.kind == "file"
    again = team_from_record(team.source)  # what a fork in another process resolves
    assert again.agent("Adder").prompt == adder.prompt
    assert again.agent("Adder").function_tools == adder.function_tools


def test_an_agents_stop_sequences_reach_its_model_calls(tmp_path: Path) -> None:
    body = AGENTS.replace('tools = ["python"]', 'tools = ["python"]\nstop = ["\\n```\\n"]')
    team = load_team_file(write(tmp_path, f'version = 1\nname = "x"\n{body}'))
    assert team.agent("Solver").stop == ("\n```\n",) and team.agent("Checker").stop == ()
    assert team_from_record(team.source).agent("Solver").stop == ("\n```\n",)


def test_yaml_selector_and_ledger_routing(tmp_path: Path) -> None:
    selector = write(
        tmp_path,
        "version: 1\nname: sel\nrouting: selector\nselector: {allow_repeated_speaker: true}\n"
        "agents:\n  - {name: A, system_message: a, description: first}\n"
        "  - {name: B, system_message: b, description: second}\n",
        "sel.yaml",
    )
    team = resolve_team(str(selector))
    assert team.first is None and team.selector is not None
    assert team.selector.participants == ("A", "B") and team.selector.allow_repeated_speaker
    assert team.advance({"step": 0}, "A", "hello").next is None  # the selector fills it in
    ledger = load_team_file(
        write(tmp_path, f'version = 1\nname = "led"\nrouting = "ledger"\n{AGENTS}')
    )
    assert ledger.first == "Solver" and ledger.agent("Solver").orchestrates
    assert "Checker" in (ledger.prompt_for({}, "Solver") or "")  # the plan prompt names workers
    assert ledger.advance({}, "Solver", "FACTS: x\nPLAN: 1. Checker").sets_plan


def test_an_advance_function_and_a_scorer_by_import_path(tmp_path: Path) -> None:
    (tmp_path / "rules.py").write_text(
        "from branchpoint.agents.teams import Advance\n"
        "def advance(state, agent, content):\n"
        "    return Advance(kind='final', next=None, done=True, final_answer=content)\n"
        "def score(task, final_answer, steps):\n"
        "    return final_answer == 'yes'\n"
    )
    body = f'version = 1\nname = "x"\nrouting = "advance:rules:advance"\nscorer = "rules:score"\n{AGENTS}'
    team = load_team_file(write(tmp_path, body))  # rules.py is found beside the file
    assert team.advance({}, "Solver", "yes").done
    assert team.score is not None and team.score(None, "yes", [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        (f'name = "x"\n{AGENTS}', "version", "version = 1"),
        ('version = 1\nname = "x"\n', "agents", "[[agents]]"),
        (f'version = 1\nname = "x"\nfirst = "Planner"\n{AGENTS}', "first", "no agent named 'Planner'"),
        (
            f'version = 1\nname = "x"\n[termination]\nsources = ["Nobody"]\n{AGENTS}',
            "termination.sources[0]",
            "no agent named 'Nobody'",
        ),
        (
            f'version = 1\nname = "x"\nrouting = "ledger"\n[ledger]\norchestrator = "Boss"\n{AGENTS}',
            "ledger.orchestrator",
            "no agent named 'Boss'",
        ),
        (AGENTS.replace('tools = ["python"]', 'tools = ["browser"]'), "agents[0].tools[0]", "unknown tool 'browser'"),
        (
            AGENTS.replace('tools = ["python"]', 'tools = ["no_such_module:fn"]'),
            "agents[0].tools[0]",
            "cannot import 'no_such_module'",
        ),
        (f'version = 1\nname = "x"\nrouting = "random"\n{AGENTS}', "routing", "round_robin, selector"),
        (f'version = 1\nname = "x"\nscorer = "fuzzy"\n{AGENTS}', "scorer", "numeric, exact, humaneval"),
        (f'version = 1\nname = "x"\ncolour = "red"\n{AGENTS}', "colour", "remove it"),
        (
            AGENTS.replace('system_message = "Solve it."', 'prompt = "missing.md"'),
            "agents[0].prompt",
            "file not found",
        ),
        (AGENTS.replace('tools = ["python"]', 'stop = [""]'), "agents[0].stop[0]", "at least 1"),
        (
            AGENTS.replace('tools = ["python"]', 'stop = ["a", "b", "c", "d", "e"]'),
            "agents[0].stop",
            "at most 4",
        ),
    ],
    ids=[
        "no_version", "no_agents", "missing_first", "missing_source", "missing_orchestrator",
        "unknown_tool", "unimportable_tool", "bad_routing", "bad_scorer", "extra_field",
        "missing_prompt", "empty_stop", "five_stops",
    ],
)  # fmt: skip
def test_bad_team_files_name_the_field_and_the_fix(
    tmp_path: Path, body: str, field: str, hint: str
) -> None:
    if not body.startswith(("version", "name")):
        body = f'version = 1\nname = "x"\n{body}'
    with pytest.raises(TeamFileError) as caught:
        load_team_file(write(tmp_path, body))
    message = str(caught.value)
    assert f": {field}: " in message and hint in message, message
    assert "\n" not in message and caught.value.exit_code == 2


def test_not_toml_and_not_found(tmp_path: Path) -> None:
    with pytest.raises(TeamFileError, match="not valid TOML"):
        load_team_file(write(tmp_path, "version = = 1"))
    with pytest.raises(TeamFileError, match="team file not found"):
        load_team_file(tmp_path / "nope.toml")
