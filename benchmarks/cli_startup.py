"""Start-up of every command that runs no agent: wall time on a small database, and what it loads.

A small trace database is made first (3 sim runs of the math team, in-process). Then each command
runs as a user runs it, `python -m branchpoint ...` in a fresh process, `--repeats` times
(median wall time, start to exit, answer included); one more run with `-X importtime` tells
whether it imported Ray, LangGraph or autogen and its slowest top-level import.

Goal (issue 16): each answers in under 1 s and imports no Ray. On a loaded machine the wall time is
mostly waiting for a core, so the CPU time (user + system) is reported beside it.

Usage: .venv/bin/python -m benchmarks.cli_startup [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from benchmarks.common import DATA, Figure, chain_task, console, median, report_figures
from branchpoint.agents.teams import MATH
from branchpoint.interventions.sweep import create_sweep
from branchpoint.model import SweepSpec
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

HEAVY = ("ray", "langgraph", "autogen_agentchat")
GOAL_S = 1.0


def small_db(path: Path) -> tuple[str, str]:
    """A trace database with 3 finished sim runs and a recorded sweep over them; returns a run
    id and the sweep id."""
    with Session(Settings(db_path=path), ray=False) as session:
        runs = [run_task(session, MATH, chain_task(n), "sim") for n in (3, 4, 5)]
        spec = SweepSpec(run_ids=tuple(r.run_id for r in runs), methods=("value_curve",))
        sweep_id = create_sweep(session.store, spec)
    return runs[0].run_id, sweep_id


def commands(db: Path, run_id: str, sweep_id: str, out: Path) -> dict[str, list[str]]:
    """The commands measured, by name (an `import` command is measured when the CLI has one)."""
    found = {
        "--help": ["--help"],
        "sql": ["sql", "--db", str(db), "SELECT run_id, status, n_steps FROM runs"],
        "export --parquet": ["export", "--db", str(db), "--parquet", str(out / "parquet")],
        "report": ["report", run_id, "--db", str(db), "-o", str(out / "report.html")],
        "sweep list": ["sweep", "list", "--db", str(db)],
        "sweep status": ["sweep", "status", sweep_id, "--db", str(db)],
    }
    whowhen = DATA / "whowhen_samples"
    if has_command("import"):
        found["import whowhen"] = ["import", "whowhen", str(whowhen), "--db", str(db)]
    return found


def has_command(name: str) -> bool:
    """Whether `branchpoint NAME` exists in this checkout."""
    from typer.main import get_command

    from branchpoint.cli import app

    group = get_command(app)
    return name in getattr(group, "commands", {})


def run_once(args: list[str], importtime: bool = False) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, exit code, stderr) of one command in a fresh interpreter."""
    flags = ["-X", "importtime"] if importtime else []
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, "-m", "branchpoint", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return time.perf_counter() - t0, children_cpu() - cpu0, done.returncode, done.stderr


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def imported(stderr: str) -> tuple[list[str], str]:
    """(heavy modules imported, the slowest top-level import with its ms) from -X importtime."""
    names, slowest, worst = set(), "", 0
    for line in stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or not parts[1].strip().isdigit():
            continue
        name, cumulative = parts[2].strip(), int(parts[1])
        names.add(name)
        top_level = not parts[2].startswith("  ")
        if top_level and cumulative > worst:
            slowest, worst = name, cumulative
    return [m for m in HEAVY if m in names], f"{slowest} {worst / 1000:.0f} ms"


def main() -> None:
    """Measure every command and print the table and the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--quick", action="store_true", help="--repeats 2")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    table = Table(title=f"command start-up on a small database (median of {repeats})")
    for col in ("command", "wall s", "CPU s", "exit", "heavy imports", "slowest top-level import"):
        table.add_column(col, justify="right")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp_name:
        tmp = Path(tmp_name)
        run_id, sweep_id = small_db(tmp / "small.duckdb")
        for name, argv in commands(tmp / "small.duckdb", run_id, sweep_id, tmp).items():
            walls, cpus = [], []
            for _ in range(repeats):
                wall, cpu, code, _ = run_once(argv)
                walls.append(wall)
                cpus.append(cpu)
            *_, stderr = run_once(argv, importtime=True)
            heavy, slowest = imported(stderr)
            wall, cpu = median(walls), median(cpus)
            table.add_row(
                name, f"{wall:.2f}", f"{cpu:.2f}", str(code), ",".join(heavy) or "-", slowest
            )
            note = f"imports {','.join(heavy)}" if heavy else ""
            note += f" exit code {code}: the command failed" if code else ""
            ok = not heavy and code == 0  # an error is not an answer
            figures += [
                Figure(f"`branchpoint {name}`: wall s to answer", wall, f"< {GOAL_S:.0f}",
                       ok and wall < GOAL_S, note),
                Figure(f"`branchpoint {name}`: CPU s (load-independent)", cpu,
                       f"< {GOAL_S:.0f}, no Ray", ok and cpu < GOAL_S, note),
            ]  # fmt: skip
    console.print(table)
    report_figures("cli_startup", figures)


if __name__ == "__main__":
    main()
