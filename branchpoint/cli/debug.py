"""Commands of the DoVer pipeline: debug one run or the failed ones, sweeps and their status."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from branchpoint.cli.common import (
    AddressOpt,
    CheckpointerOpt,
    CurveRepeatsOpt,
    DbOpt,
    ForkConcurrencyOpt,
    InProcessOpt,
    JudgeOpt,
    MethodsOpt,
    RepeatsOpt,
    TraceReader,
    app,
    cells,
    console,
    existing_db_settings,
    fork_label,
    parse_methods,
    progress_bar,
    settings_from,
    use_ray,
    user_errors,
    verdict_table,
)
from branchpoint.errors import BranchpointError

if TYPE_CHECKING:
    from branchpoint.api import Session, SweepResult
    from branchpoint.model import Outcome, SweepSpec


def debug_with_progress(
    session: Session,
    spec: SweepSpec,
    concurrency: int,
    sweep_id: str | None = None,
    announce: bool = False,
) -> SweepResult:
    """The sequence `debug`, `sweep` and `demo` share: record (or continue) the sweep, run it
    behind live progress bars (runs; forks in flight, succeeded, still failing, not carried out,
    forks/s, tokens), then print
    the verdict table. `announce` prints the sweep's id first."""
    from branchpoint.interventions.sweep import select_runs

    session.judge(spec.judge_model)  # a judge that cannot work fails before the sweep is recorded
    n_runs = len(select_runs(session.core.store, spec))  # so does a bad --where
    sweep_id = sweep_id or session.create_sweep(spec)
    if announce:
        console.print(f"sweep {sweep_id}")
    started = time.perf_counter()
    counts = {"done": 0, "running": 0, "succeeded": 0, "still failing": 0, "not carried out": 0}
    tokens = 0
    with progress_bar() as bar:
        runs_job = bar.add_task(f"{sweep_id} runs", total=n_runs, status="")
        forks_job = bar.add_task("forks", total=None, status="")

        def on_fork(outcome: Outcome | None) -> None:
            nonlocal tokens
            if outcome is None:
                counts["running"] += 1
            else:
                counts["running"] -= 1
                counts["done"] += 1
                counts[fork_label(outcome)] += 1
                tokens += outcome.input_tokens + outcome.output_tokens
            rate = counts["done"] / max(1e-9, time.perf_counter() - started)
            labels = " · ".join(f"{k} {v}" for k, v in counts.items() if k != "done")
            status = f"{labels} · {rate:.1f} forks/s · {tokens} tokens"
            bar.update(forks_job, completed=counts["done"], status=status)

        result = session.execute_sweep(
            spec,
            sweep_id=sweep_id,
            concurrency=concurrency,
            on_run=lambda r: bar.update(runs_job, advance=1),
            on_fork=on_fork,
            on_skip=lambda run_id, why: _skipped(bar, runs_job, why),
        )
    verdict_table(list(result.reports))
    return result


def _skipped(bar: Any, job: Any, why: str) -> None:
    """One line for a run a sweep cannot debug (an imported log), and the bar moves on."""
    console.print(f"[yellow]skipped:[/yellow] {escape(why)}", highlight=False, soft_wrap=True)
    bar.update(job, advance=1)


@app.command()
@user_errors
def debug(
    run_id: Annotated[str | None, typer.Argument(help="Run to debug (or use --failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Debug every failed root run.")] = False,
    methods: MethodsOpt = "value_curve,dover",
    judge: JudgeOpt = None,
    repeats: RepeatsOpt = 3,
    curve_repeats: CurveRepeatsOpt = 6,
    concurrency: ForkConcurrencyOpt = 8,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
    in_process: InProcessOpt = False,
) -> None:
    """Find why runs failed: hypotheses, tested by forked replays, with verdicts."""
    from branchpoint.api import Session
    from branchpoint.interventions.attribution import method_named
    from branchpoint.interventions.judge import judge_model
    from branchpoint.model import SweepSpec
    from branchpoint.orchestrator.fork import require_checkpoints
    from branchpoint.orchestrator.runs import load_steps, require_replayable

    if (run_id is None) == (not failed):
        raise BranchpointError("give a RUN_ID or --failed")
    judge = judge_model(judge)  # `none` and a refused `sim` are settled before anything is written
    names = parse_methods(methods)
    if judge is None and all(method_named(m).needs_judge for m in names):
        raise BranchpointError(
            f"{', '.join(names)} need(s) a judge; give --judge local (or openai:NAME@URL), "
            "or add value_curve, which needs none"
        )
    spec = SweepSpec(
        run_ids=(run_id,) if run_id else (),
        where=None if run_id else "status = 'failed'",
        methods=names,
        repeats=repeats,
        curve_repeats=curve_repeats,
        judge_model=judge,
    )
    with Session(
        settings=existing_db_settings(db, address, checkpointer), ray=use_ray(in_process, address)
    ) as session:
        if run_id:
            run = require_replayable(session.get_run(run_id))
            require_checkpoints(session.core, run, load_steps(session.core.store, run))
        result = debug_with_progress(session, spec, concurrency)
    console.print(
        f'results: branchpoint sql "SELECT * FROM verdicts v JOIN hypotheses h USING (hypothesis_id) '
        f'WHERE h.run_id IN (SELECT run_id FROM runs)"  (sweep {result.sweep_id})'
    )


@app.command()
@user_errors
def upgrade(
    run_id: Annotated[str | None, typer.Argument(help="Run to test (or use --failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed root run.")] = False,
    to: Annotated[
        str, typer.Option("--to", help="The stronger model each agent is upgraded to.")
    ] = "local:coder-1.5b",
    repeats: RepeatsOpt = 3,
    concurrency: ForkConcurrencyOpt = 8,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
    in_process: InProcessOpt = False,
) -> None:
    """Which agent's model is worth upgrading: each agent re-run on a stronger model from its
    first turn, beside resample controls, summed per agent with Fisher's test (Holm-corrected)."""
    from branchpoint.api import Session
    from branchpoint.interventions.sweep import select_runs
    from branchpoint.interventions.upgrade import agent_upgrades
    from branchpoint.model import SweepSpec

    if (run_id is None) == (not failed):
        raise BranchpointError("give a RUN_ID or --failed")
    ray = use_ray(in_process, address)
    settings = existing_db_settings(db, address, checkpointer)
    # Imported logs have no checkpoints: nothing of theirs can be re-run. Chosen before Ray starts.
    where = SweepSpec(where="status = 'failed' AND source IS NULL")
    ids = [run_id] if run_id else select_runs(TraceReader(settings.db_path), where)
    if not ids:
        raise BranchpointError(
            "no failed runs to upgrade (imported logs cannot be re-run): run a team first"
        )
    with Session(settings=settings, ray=ray) as session:
        spec = session.upgrade_spec(ids, model=to, repeats=repeats)
        result = debug_with_progress(session, spec, concurrency, announce=True)
    rows = agent_upgrades(list(result.reports))
    table = Table(title=f"upgrading each agent to {to}")
    for col in (
        "agent",
        "runs",
        "upgraded ok",
        "wilson 95%",
        "controls ok",
        "Δ",
        "Fisher p",
        "Holm p",
        "verdict",
    ):
        table.add_column(col)
    for row in rows:
        low, high = row.interval
        table.add_row(
            *cells(
                row.agent,
                row.runs,
                f"{row.successes}/{row.forks}",
                f"[{low:.2f}, {high:.2f}]",
                f"{row.control_successes}/{row.control_forks}",
                f"{row.difference:+.0%}",
                f"{row.p_value:.3f}",
                f"{row.holm_p:.3f}",
                row.verdict,
            )
        )
    console.print(table)
    worth = [r.agent for r in rows if r.verdict == "worth upgrading"]
    console.print(
        f"worth upgrading to {to}: {', '.join(worth)}"
        if worth
        else f"no agent's upgrade to {to} beats its controls significantly "
        f"({sum(r.forks for r in rows)} forks; more runs or --repeats narrow the test)"
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
    repeats: RepeatsOpt = 3,
    curve_repeats: CurveRepeatsOpt = 6,
    concurrency: ForkConcurrencyOpt = 16,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
    in_process: InProcessOpt = False,
) -> None:
    """Schedule (or --resume) failed runs × methods × interventions × repeats, plus controls."""
    if ctx.invoked_subcommand is not None:
        return
    from branchpoint.api import Session
    from branchpoint.interventions.judge import judge_model
    from branchpoint.interventions.sweep import load_spec
    from branchpoint.model import SweepSpec

    judge = judge_model(judge)
    with Session(
        settings=existing_db_settings(db, address, checkpointer), ray=use_ray(in_process, address)
    ) as session:
        if resume:
            spec = load_spec(session.core.store, resume)
        else:
            spec = SweepSpec(
                where=where or "status = 'failed'",
                methods=parse_methods(methods),
                repeats=repeats,
                curve_repeats=curve_repeats,
                judge_model=judge,
            )
        debug_with_progress(session, spec, concurrency, sweep_id=resume, announce=True)


SWEEP_COLUMNS = ("sweep_id", "status", "created_at", "planned", "done", "succeeded", "tokens")


def _sweep_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="sweeps")
    for col in SWEEP_COLUMNS:
        table.add_column(col)
    for r in rows:
        table.add_row(*cells(*(r[c] for c in SWEEP_COLUMNS)))
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


def _reader(db: Path | None) -> TraceReader:
    return TraceReader(settings_from(db).db_path)
