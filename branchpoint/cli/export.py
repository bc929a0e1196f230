"""`branchpoint export`: traces as Parquet, to an OTLP collector or an OTLP JSON file, and the
validated interventions as NExT-style rationales (JSON lines). Starts no Ray unless a live run
holds the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchpoint.cli.common import DbOpt, TraceReader, app, console, settings_from, user_errors
from branchpoint.errors import BranchpointError


@app.command("export")
@user_errors
def export(
    db: DbOpt = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="Write every table as DIR/<table>.parquet.")
    ] = None,
    otlp: Annotated[
        str | None, typer.Option("--otlp", help="Send spans to an OTLP/HTTP collector URL.")
    ] = None,
    otlp_file: Annotated[
        Path | None,
        typer.Option("--otlp-file", help="Write spans as OTLP JSON lines (a collector's file)."),
    ] = None,
    rationales: Annotated[
        Path | None,
        typer.Option("--rationales", help="Write validated interventions as rationale JSON lines."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="Rationales only for runs matching this SQL over `runs`."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Only this run's spans (--otlp, --otlp-file).")
    ] = None,
) -> None:
    """Export traces (Parquet, OTLP, OTLP JSON file) and NExT-style rationales."""
    from branchpoint.telemetry.export import (
        check_collector_url,
        check_export_db,
        export_otlp,
        export_otlp_file,
        export_parquet,
    )

    if parquet is None and otlp is None and otlp_file is None and rationales is None:
        raise BranchpointError(
            "nothing to export; give --parquet DIR, --otlp URL, --otlp-file FILE "
            "and/or --rationales FILE"
        )
    _refuse_unused_flags(parquet, otlp, otlp_file, rationales, where, run_id)
    if otlp is not None:
        check_collector_url(otlp)
    if rationales is not None and rationales.is_dir():
        raise BranchpointError(
            f"cannot write {rationales} (it is a folder); give a file path for --rationales"
        )
    db_path = settings_from(db).db_path
    check_export_db(db_path)
    if parquet is not None:
        files = export_parquet(db_path, parquet)
        console.print(f"wrote {len(files)} Parquet files to {parquet}")
    if otlp is not None:
        console.print(f"sent {export_otlp(db_path, otlp, run_id=run_id)} spans to {otlp}")
    if otlp_file is not None:
        written = export_otlp_file(db_path, otlp_file, run_id=run_id)
        console.print(f"wrote {written} spans to {otlp_file}")
    if rationales is not None:
        from branchpoint.interventions.rationales import export_rationales

        count = export_rationales(TraceReader(db_path), rationales, where)
        console.print(f"wrote {count} rationale(s) to {rationales}")


def _refuse_unused_flags(
    parquet: Path | None,
    otlp: str | None,
    otlp_file: Path | None,
    rationales: Path | None,
    where: str | None,
    run_id: str | None,
) -> None:
    """--where filters only --rationales and --run-id only the spans of --otlp/--otlp-file: with
    any other export they would be ignored for it, so they are refused."""
    spans = otlp is not None or otlp_file is not None
    if where is not None and (rationales is None or parquet is not None or spans):
        raise BranchpointError(
            "--where filters only --rationales; give it with --rationales alone "
            "(--parquet, --otlp and --otlp-file export every run)"
        )
    if run_id is not None and (not spans or parquet is not None or rationales is not None):
        raise BranchpointError(
            "--run-id selects the spans of --otlp and --otlp-file only; give it with those "
            "alone (--parquet writes every table, --rationales takes --where)"
        )
