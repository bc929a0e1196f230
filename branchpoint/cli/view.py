"""Commands that show the trace database to a person: `view` (a local web app) and `report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchpoint.cli.common import DbOpt, app, console, settings_from, user_errors
from branchpoint.errors import BranchpointError


@app.command()
@user_errors
def view(
    db: DbOpt = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")
    ] = 8765,
    allow_forks: Annotated[
        bool,
        typer.Option(
            "--allow-forks", help="Let the page start forks (`branchpoint fork`) on this database."
        ),
    ] = False,
) -> None:
    """Browse runs, steps, fork trees, verdicts and sweeps in a local web app (read-only)."""
    from branchpoint.view.server import serve

    serve(settings_from(db).db_path, port, allow_forks)


@app.command()
@user_errors
def report(
    run_id: Annotated[str | None, typer.Argument(help="Run to report on.")] = None,
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="Report on this sweep instead.")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path(
        "report.html"
    ),
    db: DbOpt = None,
) -> None:
    """Write one self-contained HTML file (no network needed) for a run or a sweep."""
    from branchpoint.view.report import write_report

    if (run_id is None) == (sweep is None):
        raise BranchpointError("give a RUN_ID or --sweep ID (one of them)")
    written = write_report(settings_from(db).db_path, output, run_id=run_id, sweep_id=sweep)
    console.print(f"wrote {written}")
