"""`branchpoint import FORMAT PATH`: foreign traces (Who&When, AgentRx, OTLP) as runs, with
attribution methods scored against their annotations; `whowhen` is the older alias.

Imports start no Ray: they open the trace database directly (a live run holding it is reported).
Every flag and file is checked before anything is written.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from branchpoint.cli.common import (
    DbOpt,
    JudgeOpt,
    app,
    cells,
    console,
    parse_methods,
    progress_bar,
    settings_from,
    user_errors,
)
from branchpoint.errors import BranchpointError, DatabaseBusyError, first_line
from branchpoint.telemetry.attributes import MAX_CONTENT_CHARS

if TYPE_CHECKING:
    from branchpoint.importers.logs import ForeignLog


class ImportFormat(str, Enum):
    """What `branchpoint import` reads."""

    whowhen = "whowhen"
    agentrx = "agentrx"
    otlp = "otlp"


ImportMethodsOpt = Annotated[
    str,
    typer.Option(
        help="Attribution methods to score after the import (comma-separated: all_at_once, "
        "step_by_step, binary_search, dover, ground_truth); empty: import only."
    ),
]


def _open_store(db_path: Path) -> Any:
    import duckdb

    from branchpoint.telemetry.store import DuckDBTraceStore

    try:
        return DuckDBTraceStore(db_path)
    except duckdb.IOException as exc:
        raise DatabaseBusyError(
            f"{db_path} is held by a running process ({first_line(exc)}); "
            "import after it finishes, or into another --db"
        ) from None


def import_logs(fmt: str, path: Path, methods: str, judge: str | None, db: Path | None) -> None:
    """Validate, read, store and (with methods) attribute; prints the summary and the scores."""
    from branchpoint.importers import ImportFormatError, read_path, store_logs
    from branchpoint.interventions.attribution import method_named
    from branchpoint.interventions.judge import judge_model, open_judge

    names = parse_methods(methods) if methods.strip() else ()
    model = judge_model(judge)
    needs_judge = [m for m in names if method_named(m).needs_judge]
    if needs_judge and model is None:
        raise BranchpointError(
            f"{', '.join(needs_judge)} need(s) a judge; give --judge local (or openai:NAME@URL), "
            "or choose methods that need none (ground_truth)"
        )
    logs, skipped = read_path(fmt, path)
    if not logs:
        shown = "; ".join(f"{p} ({why})" for p, why in skipped[:3]) or "it is empty"
        raise ImportFormatError(f"{path}: no {fmt} log found ({shown})")
    settings = settings_from(db)
    store = _open_store(settings.db_path)
    # Only a judge's calls are traced; without one the OpenTelemetry SDK is not even imported.
    provider = _judge_tracing(store) if model is not None else None
    try:
        tracer = provider.get_tracer("branchpoint.judge") if provider is not None else None
        judge_client = open_judge(model, store, settings, tracer)
        report = store_logs(store, fmt, logs, skipped)
        console.print(report.summary(), highlight=False, soft_wrap=True)
        if report.truncated_steps:
            console.print(
                f"{report.truncated_steps} step(s) longer than {MAX_CONTENT_CHARS:,} characters "
                f"were cut to {MAX_CONTENT_CHARS:,} (the most a span attribute keeps)"
            )
        if names:
            _attribute(store, logs, names, judge_client)
    finally:
        if provider is not None:
            provider.shutdown()
        store.close()


def _judge_tracing(store: Any) -> Any:
    from branchpoint.telemetry.tracing import setup_tracing

    return setup_tracing(store, "branchpoint-import")


def _attribute(store: Any, logs: list[ForeignLog], names: tuple[str, ...], judge: Any) -> None:
    from branchpoint.interventions.foreign import predict, score_logs, scores_by_team

    started = time.perf_counter()
    with progress_bar() as bar:
        job = bar.add_task("attribution", total=len(logs) * len(names), status="")
        predictions = predict(store, logs, names, judge, on_done=lambda: bar.update(job, advance=1))
    seconds = time.perf_counter() - started
    groups = {"all": score_logs(predictions, logs)}
    by_team = scores_by_team(predictions, logs)
    if len(by_team) > 1:
        groups.update(by_team)
    annotated = sum(bool(log.run.annotations) for log in logs)
    table = Table(title=f"attribution on {annotated} annotated logs (exact step match)")
    for col in ("method", "logs", "predicted", "agent", "step", "both", "step (any failure)"):
        table.add_column(col)
    for method in names:
        for group, scores in groups.items():
            score = scores[method]
            table.add_row(
                *cells(
                    method,
                    group,
                    f"{score['predicted']}/{score['n']}",
                    f"{score['agent_accuracy']:.2f}",
                    f"{score['step_accuracy']:.2f}",
                    f"{score['joint_accuracy']:.2f}",
                    f"{score['any_step_accuracy']:.2f}",
                )
            )
    console.print(table)
    console.print(f"{seconds:.1f} s for {len(logs)} logs ({seconds / len(logs):.1f} s per log)")


@app.command("import")
@user_errors
def import_(
    format: Annotated[ImportFormat, typer.Argument(help="whowhen, agentrx or otlp.")],
    path: Annotated[Path, typer.Argument(help="A file, or a folder (walked recursively).")],
    methods: ImportMethodsOpt = "",
    judge: JudgeOpt = "none",
    db: DbOpt = None,
) -> None:
    """Import foreign traces as runs (idempotent) and optionally score attribution methods."""
    import_logs(format.value, path, methods, judge, db)


@app.command("whowhen")
@user_errors
def whowhen(
    folder: Annotated[Path, typer.Argument(help="Folder (or file) of Who&When JSON logs.")],
    methods: ImportMethodsOpt = "all_at_once,step_by_step,binary_search,dover",
    judge: JudgeOpt = "local",
    db: DbOpt = None,
) -> None:
    """Alias of `branchpoint import whowhen PATH`, scoring the four judge methods by default."""
    import_logs("whowhen", folder, methods, judge, db)
