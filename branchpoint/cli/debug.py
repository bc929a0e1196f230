"""Commands of the DoVer pipeline: debug one run or the failed ones, sweeps and their status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from branchpoint.cli.common import (
    AddressOpt,
    CheckpointerOpt,
    DbOpt,
    JudgeOpt,
    MethodsOpt,
    app,
    console,
    make_judge,
    parse_methods,
    settings_from,
    sweep_with_progress,
    user_errors,
    verdict_table,
)
from branchpoint.errors import BranchpointError


@app.command()
@user_errors
def debug(
    run_id: Annotated[str | None, typer.Argument(help="Run to debug (or use --failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Debug every failed root run.")] = False,
    methods: MethodsOpt = "value_curve,dover",
    judge: JudgeOpt = None,
    repeats: Annotated[
        int, typer.Option(min=1, help="Replays per intervention (and per control).")
    ] = 3,
    curve_repeats: Annotated[
        int, typer.Option(min=1, help="Resamples per step for the value curve.")
    ] = 6,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Forks at the same time.")] = 8,
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
    repeats: Annotated[
        int, typer.Option(min=1, help="Replays per intervention (and per control).")
    ] = 3,
    curve_repeats: Annotated[
        int, typer.Option(min=1, help="Resamples per step for the value curve.")
    ] = 6,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Forks at the same time.")] = 16,
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
