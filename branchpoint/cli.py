"""The `branchpoint` command: run teams, fork and replay runs, debug failures, query traces."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from branchpoint.errors import BranchpointError
from branchpoint.model import Run
from branchpoint.settings import Settings
from branchpoint.telemetry.commands import export as export_command
from branchpoint.telemetry.commands import sql as sql_command

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
console = Console(stderr=False)
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DbOpt = Annotated[Path | None, typer.Option("--db", help="Trace database (DuckDB file).")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster: auto or ray://HOST:10001.")]
CheckpointerOpt = Annotated[str | None, typer.Option(
    "--checkpointer", help="Checkpoint saver: sqlite (default), memory, or a postgresql:// URL.")]


def user_errors(fn: F) -> F:
    """Turn our own errors into one red line and the error's exit code; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BranchpointError as exc:
            errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            errors.print("[yellow]interrupted[/yellow]; finished work is saved")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings_from(db: Path | None = None, address: str | None = None,
                  checkpointer: str | None = None, **extra: Any) -> Settings:
    """Settings from the environment with the given flags applied."""
    return Settings().with_overrides(db_path=db, ray_address=address, checkpointer=checkpointer, **extra)


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)


def run_summary(runs: list[Run], title: str = "runs") -> None:
    """Print per-run rows (for small sets) and the succeeded/failed/errored totals."""
    if len(runs) <= 30:
        table = Table(title=title)
        for col in ("run_id", "task", "status", "answer", "truth", "steps", "tokens", "seconds"):
            table.add_column(col)
        for r in runs:
            table.add_row(r.run_id, r.task.task_id, r.status, str(r.final_answer or r.error or ""),
                          str(r.task.answer or "")[:12], str(r.n_steps),
                          str(r.input_tokens + r.output_tokens), f"{r.seconds:.1f}")
        console.print(table)
    totals = Table(title="summary")
    for col in ("runs", "succeeded", "failed", "errored", "tokens", "seconds"):
        totals.add_column(col, justify="right")
    totals.add_row(str(len(runs)), *(str(sum(r.status == s for r in runs)) for s in ("succeeded", "failed", "errored")),
                   str(sum(r.input_tokens + r.output_tokens for r in runs)), f"{sum(r.seconds for r in runs):.1f}")
    console.print(totals)


@app.command()
@user_errors
def run(
    team: Annotated[str, typer.Option(help="Team: math or magentic.")] = "math",
    tasks: Annotated[str, typer.Option(help="Task file (GSM8K, GSM-Plus, HumanEval JSONL) or 'builtin'.")] = "builtin",
    model: Annotated[str, typer.Option(help="sim | local | local:/path.gguf | openai:NAME@URL")] = "local",
    limit: Annotated[int | None, typer.Option(help="Run at most N tasks.")] = None,
    concurrency: Annotated[int, typer.Option(help="Runs at the same time.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for sampling and sim faults.")] = 0,
    fault_rate: Annotated[float, typer.Option(help="sim: share of runs that get one injected fault.")] = 0.5,
    db: DbOpt = None, address: AddressOpt = None, checkpointer: CheckpointerOpt = None,
) -> None:
    """Run a team on tasks; every step is traced, checkpointed and forkable."""
    from branchpoint.agents.teams import get_team
    from branchpoint.orchestrator.runner import plan_faults, run_tasks, sim_tasks
    from branchpoint.orchestrator.session import Session, is_sim
    from branchpoint.tasks import load_tasks

    team_spec = get_team(team)
    task_list = load_tasks(tasks, None if is_sim(model) else limit)
    faults = {}
    if is_sim(model):
        task_list, skipped = sim_tasks(task_list)
        task_list = task_list[:limit]
        if skipped:
            console.print(f"[dim]sim: left out {skipped} tasks whose worked solution it cannot follow[/dim]")
        faults = plan_faults(task_list, fault_rate, seed)
    with Session(settings_from(db, address, checkpointer)) as session, progress_bar() as bar:
        job = bar.add_task(f"{team} × {model}", total=len(task_list), status="")
        counts = {"succeeded": 0, "failed": 0, "errored": 0}

        def done(r: Run) -> None:
            counts[r.status] = counts.get(r.status, 0) + 1
            bar.update(job, advance=1, status=" ".join(f"{k}={v}" for k, v in counts.items()))

        runs = run_tasks(session, team_spec, task_list, model, seed=seed, concurrency=concurrency,
                         faults=faults, on_done=done)
    run_summary(runs)


@app.command()
@user_errors
def fork(
    run_id: Annotated[str, typer.Argument(help="Run to fork.")],
    step: Annotated[int, typer.Option(help="Step k to edit; steps before it are shared.")],
    intervention: Annotated[Path | None, typer.Option(help="Intervention JSON file.")] = None,
    edit: Annotated[str | None, typer.Option(help="Shortcut: replace step k's message with TEXT.")] = None,
    repeats: Annotated[int, typer.Option(help="Replays of the fork.")] = 1,
    db: DbOpt = None, address: AddressOpt = None, checkpointer: CheckpointerOpt = None,
) -> None:
    """Fork a run at a step with an intervention and replay it."""
    from branchpoint.model import ReplaceMessage, Resample
    from branchpoint.orchestrator.fork import fork_run, parse_intervention
    from branchpoint.orchestrator.session import Session

    if intervention is not None and edit is not None:
        raise BranchpointError("give --intervention FILE or --edit TEXT, not both")
    if intervention is not None:
        if not intervention.is_file():
            raise BranchpointError(f"intervention file not found: {intervention}")
        iv = parse_intervention(intervention.read_text(), step)
    else:
        iv = ReplaceMessage(step=step, content=edit) if edit else Resample(step=step)
    with Session(settings_from(db, address, checkpointer)) as session:
        runs = fork_run(session, run_id, iv, repeats=repeats)
    console.print(f"fork of {run_id} at step {step}: {iv.kind} ({iv.intervention_id})")
    run_summary(runs, title="forks")


@app.command()
@user_errors
def replay(
    run_id: Annotated[str, typer.Argument(help="Run to re-execute from recorded LLM calls.")],
    db: DbOpt = None, address: AddressOpt = None, checkpointer: CheckpointerOpt = None,
) -> None:
    """Re-execute a run against the LLM record store alone (no model call) and compare its steps."""
    from branchpoint.orchestrator.replay import replay_run
    from branchpoint.orchestrator.session import Session

    with Session(settings_from(db, address, checkpointer)) as session:
        report = replay_run(session, run_id)
    console.print(report.render())
    if not report.identical:
        raise typer.Exit(1)


app.command("sql")(user_errors(sql_command))
app.command("export")(user_errors(export_command))


def main() -> None:
    """Console entry point."""
    sys.exit(app())
