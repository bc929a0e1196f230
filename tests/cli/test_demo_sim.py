"""`branchpoint demo` on the sim backend, as the README shows it: the whole flow in seconds."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from branchpoint.cli import app

SIM_DEMO = ("demo", "--team", "math", "--model", "sim", "--strong", "sim:0")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "240"})
    return result.exit_code, result.output


def test_the_sim_demo_validates_a_fix_beside_its_controls(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.duckdb")
    code, out = _cli(*SIM_DEMO, "--methods", "value_curve", "--limit", "8", "--db", db)
    assert code == 0, out
    validated = re.findall(
        r"^validated bi-\S+: \w+ at step \d+ \(\w+\) succeeded (\d)/3 .* vs resample controls "
        r"(\d)/3 at the same step$",
        out,
        re.MULTILINE,
    )
    assert validated and all(int(fix) > int(control) for fix, control in validated)
    assert "try: branchpoint sql" in out


def test_a_demo_whose_runs_all_succeed_says_which_flag_gives_failures(tmp_path: Path) -> None:
    code, out = _cli(*SIM_DEMO, "--db", str(tmp_path / "demo.duckdb"))
    assert code == 0
    assert (
        "no failed runs to debug: all 2 succeeded; --limit 8 runs every built-in math task" in out
    )
