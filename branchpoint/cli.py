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

app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DbOpt = Annotated[Path | None, typer.Option("--db", help="Trace database (DuckDB file).")]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster: auto or ray://HOST:10001.")
]
CheckpointerOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpointer", help="Checkpoint saver: sqlite (default), memory, or a postgresql:// URL."
    ),
]


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
            errors.print(
                "[yellow]interrupted[/yellow]; finished work is saved "
                "(`run --resume` and `sweep --resume ID` continue it)"
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings_from(
    db: Path | None = None,
    address: str | None = None,
    checkpointer: str | None = None,
    **extra: Any,
) -> Settings:
    """Settings from the environment with the given flags applied."""
    return Settings().with_overrides(
        db_path=db, ray_address=address, checkpointer=checkpointer, **extra
    )


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_summary(runs: list[Run], title: str = "runs") -> None:
    """Print per-run rows (for small sets) and the succeeded/failed/errored totals."""
    if len(runs) <= 30:
        table = Table(title=title)
        for col in ("run_id", "task", "status", "answer", "truth", "steps", "tokens", "seconds"):
            table.add_column(col)
        for r in runs:
            table.add_row(
                r.run_id,
                r.task.task_id,
                r.status,
                str(r.final_answer or r.error or ""),
                str(r.task.answer or "")[:12],
                str(r.n_steps),
                str(r.input_tokens + r.output_tokens),
                f"{r.seconds:.1f}",
            )
        console.print(table)
    totals = Table(title="summary")
    for col in ("runs", "succeeded", "failed", "errored", "tokens", "seconds"):
        totals.add_column(col, justify="right")
    totals.add_row(
        str(len(runs)),
        *(str(sum(r.status == s for r in runs)) for s in ("succeeded", "failed", "errored")),
        str(sum(r.input_tokens + r.output_tokens for r in runs)),
        f"{sum(r.seconds for r in runs):.1f}",
    )
    console.print(totals)


def run_with_progress(
    session: Any, team: Any, tasks: list[Any], model: str, **options: Any
) -> list[Run]:
    """`run_tasks` behind a progress bar that counts succeeded / failed / errored runs."""
    from branchpoint.orchestrator.runner import run_tasks

    counts = {"succeeded": 0, "failed": 0, "errored": 0}
    with progress_bar() as bar:
        job = bar.add_task(f"{team.name} × {model}", total=len(tasks), status="")

        def done(r: Run) -> None:
            counts[r.status] = counts.get(r.status, 0) + 1
            bar.update(job, advance=1, status=" ".join(f"{k}={v}" for k, v in counts.items()))

        return run_tasks(session, team, tasks, model, on_done=done, **options)


@app.command()
@user_errors
def run(
    team: Annotated[str, typer.Option(help="Team: math or magentic.")] = "math",
    tasks: Annotated[
        str, typer.Option(help="Task file (GSM8K, GSM-Plus, HumanEval JSONL) or 'builtin'.")
    ] = "builtin",
    model: Annotated[
        str, typer.Option(help="sim | local | local:/path.gguf | openai:NAME@URL")
    ] = "local",
    limit: Annotated[int | None, typer.Option(help="Run at most N tasks.")] = None,
    concurrency: Annotated[int, typer.Option(help="Runs at the same time.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for sampling and sim faults.")] = 0,
    fault_rate: Annotated[
        float, typer.Option(help="sim: share of runs that get one injected fault.")
    ] = 0.5,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip tasks that already have a finished run of this team, model and seed "
            "in the database (continue an interrupted run).",
        ),
    ] = False,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Run a team on tasks; every step is traced, checkpointed and forkable."""
    from branchpoint.agents.teams import get_team
    from branchpoint.orchestrator.runner import (
        finished_task_ids,
        plan_faults,
        preflight_model,
        sim_tasks,
    )
    from branchpoint.orchestrator.session import Session, is_sim
    from branchpoint.tasks import load_tasks

    team_spec = get_team(team)
    settings = settings_from(db, address, checkpointer)
    task_list = load_tasks(tasks, None if is_sim(model) else limit)
    preflight_model(model, team_spec, settings)
    faults = {}
    if is_sim(model):
        task_list, skipped = sim_tasks(task_list)
        task_list = task_list[:limit]
        if skipped:
            console.print(
                f"[dim]sim: left out {skipped} tasks whose worked solution it cannot follow[/dim]"
            )
        faults = plan_faults(task_list, fault_rate, seed)
    with Session(settings) as session:
        if resume:
            done = finished_task_ids(session.store, team, model, seed)
            console.print(f"resume: {len(done & {t.task_id for t in task_list})} tasks already run")
            task_list = [t for t in task_list if t.task_id not in done]
        runs = run_with_progress(
            session, team_spec, task_list, model, seed=seed, concurrency=concurrency, faults=faults
        )
    run_summary(runs)


@app.command()
@user_errors
def fork(
    run_id: Annotated[str, typer.Argument(help="Run to fork.")],
    step: Annotated[int, typer.Option(help="Step k to edit; steps before it are shared.")],
    intervention: Annotated[Path | None, typer.Option(help="Intervention JSON file.")] = None,
    edit: Annotated[
        str | None, typer.Option(help="Shortcut: replace step k's message with TEXT.")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Replays of the fork.")] = 1,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
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
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Re-execute a run against the LLM record store alone (no model call) and compare its steps."""
    from branchpoint.orchestrator.replay import replay_run
    from branchpoint.orchestrator.session import Session

    with Session(settings_from(db, address, checkpointer)) as session:
        report = replay_run(session, run_id)
    console.print(report.render())
    if not report.identical:
        raise typer.Exit(1)


MethodsOpt = Annotated[
    str,
    typer.Option(
        help="Comma-separated: value_curve, all_at_once, step_by_step, binary_search, dover."
    ),
]
JudgeOpt = Annotated[
    str | None, typer.Option(help="Model for LLM judges (local, openai:…); none: value curve only.")
]


def make_judge(session: Any, judge: str | None) -> Any:
    """An LLM judge whose calls are recorded in the trace database (replayable)."""
    if judge is None:
        return None
    from branchpoint.agents.backends import make_chat_client, parse_model_spec
    from branchpoint.agents.recording import RecordingClient, TraceRecordStore
    from branchpoint.agents.teams import MATH
    from branchpoint.interventions.judge import ChatClientJudge
    from branchpoint.orchestrator.runner import preflight_model

    preflight_model(judge, MATH, session.settings)
    client = make_chat_client(parse_model_spec(judge), session.settings)
    return ChatClientJudge(RecordingClient(client, TraceRecordStore(session.store), judge))


def parse_methods(methods: str) -> tuple[str, ...]:
    """Validated method names from a comma-separated flag."""
    from branchpoint.interventions.pipeline import METHODS

    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS + ("ground_truth",)]
    if unknown or not names:
        raise BranchpointError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return names


def sweep_with_progress(
    session: Any, sweep_id: str, spec: Any, judge: Any, concurrency: int
) -> list[Any]:
    """Execute a sweep behind a live progress bar (forks done, forks/s, tokens)."""
    import time

    from branchpoint.interventions.sweep import execute_sweep, select_runs

    n_runs = len(select_runs(session.store, spec))
    started = time.perf_counter()
    counts = {"done": 0, "running": 0, "failed": 0, "tokens": 0}
    with progress_bar() as bar:
        runs_job = bar.add_task(f"{sweep_id} runs", total=n_runs, status="")
        forks_job = bar.add_task("forks", total=None, status="")

        def on_fork(outcome: Any) -> None:
            if outcome is None:
                counts["running"] += 1
            else:
                counts["running"] -= 1
                counts["done"] += 1
                counts["failed"] += not outcome.success
                counts["tokens"] += outcome.input_tokens + outcome.output_tokens
            rate = counts["done"] / max(1e-9, time.perf_counter() - started)
            status = (
                f"done {counts['done']} running {counts['running']} failed {counts['failed']} "
                f"· {rate:.1f} forks/s · {counts['tokens']} tokens"
            )
            bar.update(forks_job, completed=counts["done"], status=status)

        reports = execute_sweep(
            session,
            sweep_id,
            spec,
            judge,
            concurrency,
            on_run=lambda r: bar.update(runs_job, advance=1),
            on_fork=on_fork,
        )
    return reports


def verdict_table(reports: list[Any]) -> None:
    """Print one row per tested hypothesis."""
    table = Table(title="verdicts")
    for col in (
        "run_id",
        "method",
        "agent",
        "step",
        "intervention",
        "forks ok",
        "wilson 95%",
        "fulfilled",
        "progress",
        "control ok",
        "verdict",
    ):
        table.add_column(col)
    for report in reports:
        for t in report.tests:
            v = t.verdict
            table.add_row(
                report.run.run_id,
                t.hypothesis.method,
                t.hypothesis.agent,
                str(t.hypothesis.step),
                t.intervention.kind,
                f"{v.successes}/{v.n}",
                f"[{v.wilson_low:.2f}, {v.wilson_high:.2f}]",
                f"{v.fulfilled}/{v.n}",
                f"{v.mean_progress:+.2f}",
                f"{v.control_successes}/{v.control_n}",
                v.label,
            )
        for failure in report.failures:
            table.add_row(
                report.run.run_id,
                failure.split(":")[0],
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "no hypothesis" if "flat" in failure or "judge" in failure else "rejected",
            )
    console.print(table)


@app.command()
@user_errors
def debug(
    run_id: Annotated[str | None, typer.Argument(help="Run to debug (or use --failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Debug every failed root run.")] = False,
    methods: MethodsOpt = "value_curve,dover",
    judge: JudgeOpt = None,
    repeats: Annotated[int, typer.Option(help="Replays per intervention (and per control).")] = 3,
    curve_repeats: Annotated[int, typer.Option(help="Resamples per step for the value curve.")] = 6,
    concurrency: Annotated[int, typer.Option(help="Forks at the same time.")] = 8,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Find why runs failed: hypotheses, tested by forked replays, with verdicts."""
    from branchpoint.interventions.sweep import SweepSpec, create_sweep
    from branchpoint.orchestrator.session import Session

    if (run_id is None) == (not failed):
        raise BranchpointError("give a RUN_ID or --failed")
    spec = SweepSpec(
        run_ids=(run_id,) if run_id else (),
        where=None if run_id else "status = 'failed'",
        methods=parse_methods(methods),
        repeats=repeats,
        curve_repeats=curve_repeats,
        judge_model=judge,
    )
    with Session(settings_from(db, address, checkpointer)) as session:
        if run_id:
            from branchpoint.orchestrator.runs import load_run

            load_run(session.store, run_id)
        sweep_id = create_sweep(session.store, spec)
        reports = sweep_with_progress(
            session, sweep_id, spec, make_judge(session, judge), concurrency
        )
    verdict_table(reports)
    console.print(
        f'results: branchpoint sql "SELECT * FROM verdicts v JOIN hypotheses h USING (hypothesis_id) '
        f'WHERE h.run_id IN (SELECT run_id FROM runs)"  (sweep {sweep_id})'
    )


sweep_app = typer.Typer(
    help="Intervention sweeps over many failed runs, on a Ray cluster.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(sweep_app, name="sweep")


@sweep_app.callback()
@user_errors
def sweep(
    ctx: typer.Context,
    where: Annotated[str | None, typer.Option(help="SQL filter over the runs view.")] = None,
    resume: Annotated[str | None, typer.Option(help="Finish the sweep with this id.")] = None,
    methods: MethodsOpt = "value_curve",
    judge: JudgeOpt = None,
    repeats: Annotated[int, typer.Option(help="Replays per intervention (and per control).")] = 3,
    curve_repeats: Annotated[int, typer.Option(help="Resamples per step for the value curve.")] = 6,
    concurrency: Annotated[int, typer.Option(help="Forks at the same time.")] = 16,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Schedule (or --resume) failed runs × methods × interventions × repeats, plus controls."""
    if ctx.invoked_subcommand is not None:
        return
    from branchpoint.interventions.sweep import SweepSpec, create_sweep, load_spec
    from branchpoint.orchestrator.session import Session

    with Session(settings_from(db, address, checkpointer)) as session:
        if resume:
            sweep_id, spec = resume, load_spec(session.store, resume)
        else:
            spec = SweepSpec(
                where=where or "status = 'failed'",
                methods=parse_methods(methods),
                repeats=repeats,
                curve_repeats=curve_repeats,
                judge_model=judge,
            )
            sweep_id = create_sweep(session.store, spec)
        console.print(f"sweep {sweep_id}")
        reports = sweep_with_progress(
            session, sweep_id, spec, make_judge(session, spec.judge_model), concurrency
        )
    verdict_table(reports)


def _sweep_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="sweeps")
    for col in ("sweep_id", "status", "created_at", "planned", "done", "succeeded", "tokens"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(
                str(r[c])
                for c in (
                    "sweep_id",
                    "status",
                    "created_at",
                    "planned",
                    "done",
                    "succeeded",
                    "tokens",
                )
            )
        )
    console.print(table)


@sweep_app.command("status")
@user_errors
def sweep_status(
    sweep_id: Annotated[str, typer.Argument(help="Sweep id.")], db: DbOpt = None
) -> None:
    """Progress of one sweep."""
    from branchpoint.interventions.sweep import sweep_rows

    _sweep_table(sweep_rows(_reader(db), sweep_id))


@sweep_app.command("list")
@user_errors
def sweep_list(db: DbOpt = None) -> None:
    """All sweeps with their progress."""
    from branchpoint.interventions.sweep import sweep_rows

    _sweep_table(sweep_rows(_reader(db)))


class _Reader:
    """Read-only queries returning dicts; works while a sweep is writing (via its sink)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        from branchpoint.telemetry.query import readonly_query

        columns, rows = readonly_query(self.db_path, sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]


def _reader(db: Path | None) -> _Reader:
    return _Reader(settings_from(db).db_path)


@app.command()
@user_errors
def demo(
    model: Annotated[str, typer.Option(help="Model for the team and the judge.")] = "local",
    limit: Annotated[int, typer.Option(help="Built-in tasks to run.")] = 3,
    methods: MethodsOpt = "dover",
    repeats: Annotated[int, typer.Option(help="Replays per intervention (and per control).")] = 2,
    curve_repeats: Annotated[int, typer.Option(help="Resamples per step for the value curve.")] = 1,
    db: DbOpt = None,
) -> None:
    """The main job on embedded defaults: run the math team on built-in tasks, then debug failures."""
    from branchpoint.agents.teams import MATH
    from branchpoint.interventions.sweep import SweepSpec, create_sweep
    from branchpoint.orchestrator.session import Session
    from branchpoint.tasks import builtin_tasks

    tasks = builtin_tasks()[:limit]
    with Session(settings_from(db)) as session:
        console.rule(f"1. the math team on {len(tasks)} built-in tasks ({model})")
        runs = run_with_progress(session, MATH, tasks, model, concurrency=2)
        run_summary(runs)
        failed = tuple(r.run_id for r in runs if r.status == "failed")
        if not failed:
            console.print("no failed runs to debug")
            return
        console.rule(f"2. debugging {len(failed)} failed run(s) by intervention")
        spec = SweepSpec(
            run_ids=failed,
            methods=parse_methods(methods),
            repeats=repeats,
            curve_repeats=curve_repeats,
            judge_model=model,
        )
        sweep_id = create_sweep(session.store, spec)
        reports = sweep_with_progress(
            session, sweep_id, spec, make_judge(session, model), concurrency=2
        )
    verdict_table(reports)
    console.print(
        f'traces: {settings_from(db).db_path}  —  try: branchpoint sql "SELECT * FROM verdicts"'
    )


@app.command("whowhen")
@user_errors
def whowhen(
    folder: Annotated[Path, typer.Argument(help="Folder of Who&When JSON logs.")],
    methods: MethodsOpt = "all_at_once,step_by_step,binary_search,dover",
    judge: JudgeOpt = "local",
    db: DbOpt = None,
) -> None:
    """Import Who&When failure logs as runs and score attribution methods on them."""
    from branchpoint.interventions.foreign import attribute_logs, import_log
    from branchpoint.interventions.whowhen import load_whowhen_dir
    from branchpoint.orchestrator.session import Session

    logs = load_whowhen_dir(folder)
    names = parse_methods(methods)
    with Session(settings_from(db)) as session:
        for log in logs:
            import_log(session.tracer, log)
        session.flush()
        with progress_bar() as bar:
            job = bar.add_task("attribution", total=len(logs) * len(names), status="")
            scores = attribute_logs(
                session.store,
                logs,
                names,
                make_judge(session, judge),
                on_done=lambda: bar.update(job, advance=1),
            )
    table = Table(title=f"attribution on {len(logs)} Who&When logs (exact step match)")
    for col in ("method", "predicted", "agent accuracy", "step accuracy", "both"):
        table.add_column(col)
    for method, score in scores.items():
        table.add_row(
            method,
            f"{score['predicted']}/{score['n']}",
            f"{score['agent_accuracy']:.2f}",
            f"{score['step_accuracy']:.2f}",
            f"{score['joint_accuracy']:.2f}",
        )
    console.print(table)


app.command("sql")(user_errors(sql_command))
app.command("export")(user_errors(export_command))


def main() -> None:
    """Console entry point."""
    sys.exit(app())
