"""Finding teams: built-in names, import paths, entry points, files, autogen JSON; and bad
`--team` input as one line, exit code 2 and nothing written to the trace database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchpoint.agents.team_registry import (
    ENTRY_POINT_GROUP,
    TeamNotFoundError,
    list_teams,
    resolve_team,
    team_for_run,
)
from branchpoint.agents.teams import MATH
from branchpoint.cli import app
from branchpoint.model import Run, Task

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def userteams(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's package importable, as from the folder that holds it."""
    monkeypatch.syspath_prepend(str(TESTS))


def test_built_in_names_and_import_paths(userteams: None) -> None:
    assert resolve_team("math") is MATH
    team = resolve_team("userteams.pair:TEAM")
    assert team.agent_names == ("Adder", "Checker")
    assert team.source is not None and team.source.kind == "import"
    assert team.source.code_path == str(TESTS)  # the folder that holds `userteams`
    assert resolve_team("userteams.pair:make_team").agent_names == team.agent_names
    run = Run(run_id="r", task=Task(task_id="t", question="q"), team="pair", model="team",
              team_source=team.source)  # fmt: skip
    assert team_for_run(run).agent_names == team.agent_names
    assert team_for_run(run.model_copy(update={"team": "math", "team_source": None})) is MATH


def test_an_installed_package_registers_teams_by_entry_point(
    userteams: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "userteams_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: userteams-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nadder = userteams.pair:TEAM\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    team = resolve_team("adder")
    assert team.name == "adder" and team.agent_names == ("Adder", "Checker")
    listed = {row.name: row for row in list_teams()}
    assert listed["math"].kind == "builtin"
    assert listed["adder"].kind == "entry point" and "userteams.pair:TEAM" in listed["adder"].where


def test_autogen_json_by_prefix_or_suffix(tmp_path: Path) -> None:
    from test_teams_autogen import round_robin

    path = tmp_path / "adder.json"
    path.write_text(round_robin().dump_component().model_dump_json())
    assert resolve_team(f"autogen:{path}").agent_names == ("Calc", "Writer", "Checker")
    assert resolve_team(str(path)).name == "adder"


@pytest.mark.parametrize(
    "text", ["nosuchteam", "no_such_module:TEAM", "userteams.pair:NOPE", "userteams.tools:add"]
)
def test_unresolvable_teams_are_clear_errors(userteams: None, text: str) -> None:
    with pytest.raises(TeamNotFoundError) as caught:
        resolve_team(text)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def bad_autogen(tmp_path: Path) -> str:
    from test_teams_autogen import round_robin

    data = json.loads(round_robin().dump_component().model_dump_json())
    data["provider"] = "autogen_agentchat.teams.MagenticOneGroupChat"
    path = tmp_path / "magentic_one.json"
    path.write_text(json.dumps(data))
    return f"autogen:{path}"


def bad_file(tmp_path: Path, tool: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(
        f'version = 1\nname = "bad"\nfirst = "Writer"\n[[agents]]\nname = "Solver"\n'
        f'system_message = "Solve."\ntools = ["{tool}"]\n'
    )
    return str(path)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda p: "no_such_module:TEAM", "cannot import 'no_such_module'"),
        (lambda p: bad_file(p, "python"), "first: no agent named 'Writer'"),
        (lambda p: bad_file(p, "nowhere:tool"), "agents[0].tools[0]: unknown tool"),
        (bad_autogen, "MagenticOneGroupChat is not supported"),
    ],
    ids=["import_path", "missing_agent", "unknown_tool", "unsupported_autogen"],
)
def test_bad_team_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, make: object, named: str
) -> None:
    team = make(tmp_path)  # type: ignore[operator]
    db = tmp_path / "trace.duckdb"
    result = CliRunner().invoke(app, ["run", "--team", team, "--model", "sim", "--db", str(db)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in " ".join(lines[0].split()), result.stderr
    assert not db.exists() and not list(tmp_path.glob("trace.*"))  # no trace db, no checkpoints


def _block_after(readme: str, heading: str, fence: str) -> str:
    section = readme[readme.index(heading) :]
    start = section.index(f"```{fence}\n") + len(fence) + 4
    return section[start : section.index("```\n", start)]


def test_the_readme_shows_the_example_files_as_they_are() -> None:
    root = TESTS.parent
    readme = (root / "README.md").read_text()
    pair = (root / "examples/teams/pair.py").read_text()
    assert _block_after(readme, "### 1. A team in Python", "python") == pair.split('"""\n\n', 1)[1]
    toml = (root / "examples/teams/pair.toml").read_text()
    assert _block_after(readme, "### 2. A team file", "text") == toml.split("\n", 1)[1]


def test_branchpoint_teams_lists_teams_and_shows_one() -> None:
    listing = CliRunner().invoke(app, ["teams"])
    assert listing.exit_code == 0 and "magentic" in listing.output and "builtin" in listing.output
    shown = CliRunner().invoke(app, ["teams", str(TESTS.parent / "examples/teams/pair.toml")])
    assert shown.exit_code == 0, shown.output
    assert "pair_file" in shown.output and "Solver" in shown.output and "python" in shown.output


def test_the_python_api_runs_and_forks_a_user_team_in_process(
    userteams: None, tmp_path: Path
) -> None:
    import branchpoint as bp

    task = Task(task_id="t", question="What is 2 + 3?", answer="5")
    with bp.session(tmp_path / "api.duckdb", team="userteams.pair:TEAM", model="team") as s:
        [run] = s.run(task)
        assert (run.status, run.team, run.final_answer) == ("succeeded", "pair", "5")
        [fork] = s.fork(run, bp.resample(0))
        assert fork.status == "succeeded" and fork.parent_run_id == run.run_id
        steps = s.sql(f"SELECT agent FROM steps WHERE run_id = '{run.run_id}' ORDER BY step")
        assert [r["agent"] for r in steps] == ["Adder", "Checker"]
