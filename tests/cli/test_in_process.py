"""`--in-process`: the commands that run agents do it in this process, without starting Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from branchpoint.cli import app


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_run_fork_replay_debug_upgrade_and_sweep_run_without_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("an --in-process command started Ray")

    monkeypatch.setattr(ray, "init", no_ray)
    db = str(tmp_path / "t.duckdb")
    code, out = _cli("run", "--model", "sim", "--limit", "8", "--db", db, "--in-process")
    assert code == 0, out
    code, out = _cli(
        "sql", "SELECT run_id FROM runs WHERE status = 'failed' ORDER BY run_id LIMIT 1",
        "--db", db, "--format", "csv",
    )  # fmt: skip
    run_id = out.split()[-1]
    for args in (
        ("fork", run_id, "--step", "1", "--repeats", "2"),
        ("replay", run_id),
        ("debug", run_id, "--methods", "value_curve", "--curve-repeats", "1"),
        ("upgrade", run_id, "--to", "sim:0", "--repeats", "1"),
        ("sweep", "--where", f"run_id = '{run_id}'", "--methods", "ground_truth"),
    ):
        code, out = _cli(*args, "--db", db, "--in-process")
        assert code == 0, (args, out)
    forks = _cli("sql", "SELECT count(*) AS n FROM runs WHERE parent_run_id IS NOT NULL",
                 "--db", db, "--format", "csv")[1].split()  # fmt: skip
    assert int(forks[-1]) > 2


def test_in_process_and_a_cluster_address_are_refused_together(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    code, out = _cli("run", "--model", "sim", "--limit", "1", "--db", db, "--in-process",
                     "--address", "auto")  # fmt: skip
    assert code == 2
    assert out.strip() == (
        "error: --in-process runs no Ray: give --in-process or --address, not both"
    )
    assert not Path(db).exists()


def test_a_team_gets_the_built_in_tasks_it_can_work_on() -> None:
    """`run --team code` ran the code team on the built-in math questions (no function to write,
    no example: every run failed); each team now gets its kind of built-in task."""
    from branchpoint.agents.code_team import CODE
    from branchpoint.agents.teams import MATH
    from branchpoint.api import builtin_tasks_for, plan_runs

    code, math = builtin_tasks_for(CODE), builtin_tasks_for(MATH)
    assert code and all(t.entry_point for t in code)
    assert math and not any(t.entry_point for t in math)
    plan = plan_runs("builtin", team="math", model="sim")
    assert [t.task_id for t in plan.tasks] == [t.task_id for t in math] and plan.left_out == 0
