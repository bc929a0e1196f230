"""Commands that run no agent never import Ray (nor LangGraph or autogen): they start fast.

Each check runs in a fresh interpreter, so modules imported by other tests do not count.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("ray", "langgraph", "autogen_agentchat")

# Runs the commands in-process through typer's runner, then reports which heavy modules loaded.
SCRIPT = """
import sys
from typer.testing import CliRunner
from branchpoint.cli import app
from branchpoint.telemetry.store import DuckDBTraceStore

db = sys.argv[1]
DuckDBTraceStore(db).close()  # a small (empty) trace database with its views
runner = CliRunner()
for args in {commands}:
    result = runner.invoke(app, [*args])
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output)
print("heavy:" + ",".join(m for m in {heavy} if m in sys.modules))
"""


def heavy_modules_after(commands: list[list[str]], tmp_path: Path) -> list[str]:
    """The heavy modules loaded after running `commands` in a fresh interpreter."""
    code = textwrap.dedent(SCRIPT).format(commands=repr(commands), heavy=repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "t.duckdb")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("heavy:"), done.stdout[-2000:]
    return [m for m in last.removeprefix("heavy:").split(",") if m]


@pytest.mark.parametrize(
    "commands",
    [
        [["--help"]],
        [["sql", "--db", "{db}", "SELECT count(*) FROM runs"]],
        [["export", "--db", "{db}", "--parquet", "{out}"]],
        [["sweep", "list", "--db", "{db}"], ["sweep", "status", "sweep-none", "--db", "{db}"]],
        [["report", "--help"], ["run", "--help"], ["fork", "--help"], ["debug", "--help"]],
    ],
    ids=["help", "sql", "export", "sweep-status-list", "subcommand-help"],
)
def test_commands_without_agents_do_not_import_ray(
    commands: list[list[str]], tmp_path: Path
) -> None:
    db, out = str(tmp_path / "t.duckdb"), str(tmp_path / "parquet")
    filled = [[a.format(db=db, out=out) for a in args] for args in commands]
    assert heavy_modules_after(filled, tmp_path) == []
