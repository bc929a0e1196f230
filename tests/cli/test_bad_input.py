"""Bad input found by an adversarial pass over the CLI: each is one line and a non-zero exit,
and records nothing; text from the data (a model's answer, a foreign log) is shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import branchpoint
from rich.console import Console
from typer.testing import CliRunner

from branchpoint.cli import app, common
from branchpoint.model import Run
from branchpoint.tasks import Task


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _count(db: str, sql: str) -> int:
    return int(_cli("sql", sql, "--db", db, "--format", "csv")[1].split()[-1])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("bad") / "t.duckdb")
    code, out = _cli("run", "--model", "sim", "--limit", "3", "--db", path, "--in-process")
    assert code == 0, out
    return path


def _a_run(db: str) -> str:
    return _cli("sql", "SELECT run_id FROM runs ORDER BY run_id LIMIT 1", "--db", db,
                "--format", "csv")[1].split()[-1]  # fmt: skip


def test_a_run_made_with_another_checkpointer_is_not_forked_into_empty_runs(db: str) -> None:
    run_id, runs = _a_run(db), _count(db, "SELECT count(*) FROM runs")
    for args in (
        ("fork", run_id, "--step", "1", "--repeats", "2"),
        ("debug", run_id, "--methods", "value_curve"),
    ):
        code, out = _cli(*args, "--checkpointer", "memory", "--in-process", "--db", db)
        assert code == 2, (args, out)
        expected = (
            f"error: run {run_id}'s checkpoints are not in this checkpointer (InMemorySaver); "
            "fork, replay or debug it with the --checkpointer it was run with"
        )
        assert out.strip().splitlines() == [expected]
    assert _count(db, "SELECT count(*) FROM runs") == runs


def test_debug_with_only_judge_methods_and_no_judge_is_refused(db: str) -> None:
    sweeps = _count(db, "SELECT count(*) FROM sweeps")
    code, out = _cli("debug", _a_run(db), "--methods", "dover", "--judge", "none",
                     "--in-process", "--db", db)  # fmt: skip
    assert code == 2
    assert out.strip() == (
        "error: dover need(s) a judge; give --judge local (or openai:NAME@URL), "
        "or add value_curve, which needs none"
    )
    assert _count(db, "SELECT count(*) FROM sweeps") == sweeps


def test_a_sweep_with_a_bad_where_is_not_recorded(db: str) -> None:
    sweeps = _count(db, "SELECT count(*) FROM sweeps")
    code, out = _cli("sweep", "--where", "bad ((", "--in-process", "--db", db)
    assert code == 2
    assert len(out.strip().splitlines()) == 1 and out.startswith("error: ")
    assert _count(db, "SELECT count(*) FROM sweeps") == sweeps


def test_statements_piped_into_sql_set_the_exit_code(db: str) -> None:
    failed = branchpoint("sql", "--db", db, stdin="SELECT 1;\nSELECT * FROM nosuch;\n")
    assert failed.returncode == 2
    assert "Table with name nosuch does not exist" in failed.stdout
    assert branchpoint("sql", "--db", db, stdin="SELECT 1;\n").returncode == 0


def test_sql_shows_markup_and_control_characters_as_text(db: str) -> None:
    code, out = _cli("sql", "SELECT '[/]' AS \"[/INST]\", chr(27) || '[31mred' AS y", "--db", db)
    assert code == 0, out
    assert "[/INST]" in out and "[/]" in out
    assert "\\x1b[31mred" in out and "\x1b" not in out


def test_an_error_naming_a_bracketed_path_is_one_line() -> None:
    result = branchpoint("run", "--model", "sim", "--tasks", "/nonexistent/[/]x.jsonl",
                          "--in-process")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: task file not found: /nonexistent/[/]x.jsonl"


def test_a_model_answer_with_markup_is_printed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(width=200, record=True)
    monkeypatch.setattr(common, "console", console)
    task = Task(task_id="t1", question="q?", answer="42")
    run = Run(run_id="run-1", task=task, team="math", model="m", status="failed",
              final_answer="[/INST] 41", error=None)  # fmt: skip
    common.run_summary([run])
    assert "[/INST] 41" in console.export_text()


def test_a_cause_with_markup_is_printed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(width=200, record=True)
    monkeypatch.setattr(common, "console", console)
    task = Task(task_id="t1", question="q?", answer="42")
    run = Run(run_id="run-1", task=task, team="math", model="m", status="errored",
              error="ValueError: bad token [/s]")  # fmt: skip
    common.run_summary([run])
    assert "bad token [/s]" in console.export_text()


def test_the_checkpointer_check_passes_a_run_made_with_this_one(db: str, tmp_path: Path) -> None:
    code, out = _cli("fork", _a_run(db), "--step", "1", "--repeats", "1", "--in-process",
                     "--db", db)  # fmt: skip
    assert code == 0, out


def test_swap_model_for_an_agent_the_team_lacks_is_refused(db: str, tmp_path: Path) -> None:
    iv = tmp_path / "iv.json"
    iv.write_text('{"kind": "swap_model", "step": 1, "model": "sim", "agent": "Nobody"}')
    runs = _count(db, "SELECT count(*) FROM runs")
    code, out = _cli("fork", _a_run(db), "--step", "1", "--intervention", str(iv),
                     "--in-process", "--db", db)  # fmt: skip
    assert code == 2
    assert out.strip() == (
        "error: swap_model names agent 'Nobody', which team math does not have; "
        "name one of Planner, Solver, Verifier"
    )
    assert _count(db, "SELECT count(*) FROM runs") == runs


def test_a_table_shows_the_first_rows_of_a_huge_result_and_says_so(db: str) -> None:
    code, out = _cli("sql", "SELECT * FROM range(5000000) t(i)", "--db", db)
    assert code == 0
    assert out.strip().endswith(
        "the first 1000 rows of more; add LIMIT and OFFSET, or --format csv for every row"
    )
    code, out = _cli("sql", "SELECT * FROM range(5000) t(i)", "--db", db, "--format", "csv")
    assert code == 0 and len(out.split()) == 5001


def test_an_empty_edit_is_refused_not_run_as_a_resample(db: str) -> None:
    runs = _count(db, "SELECT count(*) FROM runs")
    code, out = _cli("fork", _a_run(db), "--step", "1", "--edit", " ", "--in-process", "--db", db)
    assert code == 2
    assert out.strip() == (
        "error: --edit needs the new message text; to replay step k unchanged, leave --edit out"
    )
    assert _count(db, "SELECT count(*) FROM runs") == runs


def test_a_folder_or_device_for_a_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    db = str(tmp_path / "new.duckdb")
    code, out = _cli("run", "--model", "sim", "--tasks", str(tmp_path), "--in-process", "--db", db)
    assert (code, out.strip()) == (
        2,
        f"error: task file {tmp_path} is a folder; pass a .jsonl or .jsonl.gz file of tasks",
    )
    code, out = _cli("run", "--model", "sim", "--tasks", "/dev/null", "--in-process", "--db", db)
    assert code == 2 and "is not a regular file" in out
    assert not Path(db).exists()


def test_team_code_that_raises_is_one_line_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boomteam.py").write_text("x = undefined_name\n")
    (tmp_path / "facteam.py").write_text("def team():\n    raise RuntimeError('no model')\n")
    db = str(tmp_path / "t.duckdb")
    code, out = _cli("run", "--team", "boomteam:team", "--model", "sim", "--in-process",
                     "--db", db)  # fmt: skip
    assert code == 2
    assert out.strip() == (
        "error: team 'boomteam:team' does not import: NameError: name 'undefined_name' is not "
        f"defined at {tmp_path / 'boomteam.py'}, line 1; fix the team's code"
    )
    code, out = _cli("run", "--team", "facteam:team", "--model", "sim", "--in-process",
                     "--db", db)  # fmt: skip
    assert code == 2
    assert out.strip() == (
        "error: team 'facteam:team' was not built: RuntimeError: no model at "
        f"{tmp_path / 'facteam.py'}, line 2; fix the team's code"
    )
    assert not Path(db).exists()


@pytest.mark.slow
def test_an_unreachable_postgres_checkpointer_is_one_line(tmp_path: Path) -> None:
    result = branchpoint("run", "--model", "sim", "--limit", "1", "--in-process",
                          "--checkpointer", "postgresql://127.0.0.1:1/x",
                          "--db", str(tmp_path / "t.duckdb"))  # fmt: skip
    assert result.returncode == 2
    expected = (
        "error: Cannot connect to the Postgres checkpointer at postgresql://127.0.0.1:1/x "
        "within 10s: check that the server is up and the URL, user and password are right, "
        "or use --checkpointer sqlite."
    )
    assert result.stderr.strip().splitlines() == [expected]
