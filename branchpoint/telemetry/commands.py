"""The `branchpoint sql` command (registered by `branchpoint.cli`; `export` is `cli/export.py`)."""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from branchpoint.errors import BranchpointError
from branchpoint.settings import Settings

QUIT = {".quit", ".exit", "\\q"}


class OutputFormat(str, Enum):
    """How `branchpoint sql` prints its result."""

    table = "table"
    csv = "csv"
    json = "json"


def render_text(columns: list[str], rows: list[tuple[Any, ...]], fmt: OutputFormat) -> str:
    """A query result as CSV or JSON text."""
    if fmt is OutputFormat.json:
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def render_table(columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    """A query result as a rich table."""
    table = Table(*columns, show_lines=False, caption=f"{len(rows)} row(s)")
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    return table


def _print(
    console: Console, columns: list[str], rows: list[tuple[Any, ...]], fmt: OutputFormat
) -> None:
    if fmt is OutputFormat.table:
        console.print(render_table(columns, rows))
    else:
        console.print(
            render_text(columns, rows, fmt), markup=False, highlight=False, soft_wrap=True
        )


def _query(db_path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A read-only query (DuckDB is imported here, not when the CLI starts)."""
    from branchpoint.telemetry.query import readonly_query

    return readonly_query(db_path, sql)


def _db(db: Path | None) -> Path:
    return Settings().with_overrides(db_path=db).db_path


def _prompt(db_path: Path, fmt: OutputFormat, console: Console) -> None:
    """Read queries line by line until `.quit` or end of input; errors do not end the session."""
    console.print(f"branchpoint sql on {db_path} (read-only). End with .quit", style="dim")
    while True:
        try:
            line = console.input("[bold cyan]sql>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            return
        if line in QUIT:
            return
        if not line:
            continue
        try:
            _print(console, *_query(db_path, line), fmt)
        except BranchpointError as exc:
            console.print(f"[red]{exc}[/]")


def sql(
    query: Annotated[str | None, typer.Argument(help="SQL to run; omit for a prompt.")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Trace database file.")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
) -> None:
    """Query the trace database read-only (works while a run is writing to it)."""
    db_path = _db(db)
    console = Console()
    if query is None:
        _prompt(db_path, format, console)
        return
    _print(console, *_query(db_path, query), format)
