"""The `branchpoint sql` command (registered by `branchpoint.cli`; `export` is `cli/export.py`)."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from branchpoint.errors import BranchpointError
from branchpoint.settings import Settings

QUIT = {".quit", ".exit", "\\q"}
# A table shows at most this many rows (rich lays a table out whole: a million rows took a
# minute and a gigabyte); csv and json print every row.
MAX_TABLE_ROWS = 1000


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


# Terminal control characters (ESC, BEL, C1 …) other than tab and newline: a table shows them
# escaped, so text from a foreign log cannot drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_text(value: Any) -> Text:
    """A value as plain text: never read as rich markup (a "[/]" in the data), control
    characters escaped."""
    text = "NULL" if value is None else str(value)
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def render_table(columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    """A query result as a rich table of plain text (control characters shown escaped)."""
    table = Table(show_lines=False, caption=f"{len(rows)} row(s)")
    for column in columns:
        table.add_column(plain_text(column))
    for row in rows:
        table.add_row(*(plain_text(v) for v in row))
    return table


def _print(
    console: Console, columns: list[str], rows: list[tuple[Any, ...]], fmt: OutputFormat
) -> None:
    if fmt is OutputFormat.table:
        console.print(render_table(columns, rows[:MAX_TABLE_ROWS]))
        if len(rows) > MAX_TABLE_ROWS:
            console.print(
                f"the first {MAX_TABLE_ROWS} rows of more; add LIMIT and OFFSET, or --format csv "
                "for every row",
                style="yellow",
                soft_wrap=True,
            )
    else:
        console.print(
            render_text(columns, rows, fmt), markup=False, highlight=False, soft_wrap=True
        )


def _query(db_path: Path, sql: str, fmt: OutputFormat) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A read-only query (DuckDB is imported here, not when the CLI starts); a table reads one
    row more than it shows, to say there are more."""
    from branchpoint.telemetry.query import readonly_query

    return readonly_query(
        db_path, sql, max_rows=MAX_TABLE_ROWS + 1 if fmt is OutputFormat.table else None
    )


def _db(db: Path | None) -> Path:
    return Settings().with_overrides(db_path=db).db_path


def _prompt(db_path: Path, fmt: OutputFormat, console: Console) -> int:
    """Read queries line by line until `.quit` or end of input; errors do not end the session.
    Returns how many statements failed."""
    console.print(f"branchpoint sql on {db_path} (read-only). End with .quit", style="dim")
    failed = 0
    while True:
        try:
            line = console.input("[bold cyan]sql>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            return failed
        if line in QUIT:
            return failed
        if not line:
            continue
        try:
            _print(console, *_query(db_path, line, fmt), fmt)
        except BranchpointError as exc:
            failed += 1
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
        failed = _prompt(db_path, format, console)
        if failed and not sys.stdin.isatty():  # statements piped in: a script reads the exit code
            raise typer.Exit(2)
        return
    _print(console, *_query(db_path, query, format), format)
