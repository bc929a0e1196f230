"""Read-only SQL over a trace database, also while a run or sweep is writing to it.

`readonly_query(db, sql)` is the one way to run user SQL (the `sql` command, the viewer, the
API): the SQL is vetted first (`readonly.read_statements`), then run on a read-only connection
with `store.LOCKED_CONFIG`. DuckDB lets one process write a file, or many read it, never both: if
a live writer holds the lock, the query goes to that writer (the `TraceSink` actor) at the
address it recorded next to the file (`<db>.sink.json`), where it is vetted again and run inside
a rolled-back transaction on a connection with the same locked configuration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from branchpoint.errors import BranchpointError, DatabaseBusyError
from branchpoint.telemetry.readonly import InvalidQueryError, read_statements
from branchpoint.telemetry.store import (
    TraceDatabaseError,
    connect,
    fetch_rows,
    first_line,
    is_lock_error,
    open_store_for,
)

Table = tuple[list[str], list[tuple[Any, ...]]]


class MissingDatabaseError(BranchpointError):
    """The trace database file does not exist."""


_DAMAGE = ("corrupt", "checksum", "could not read", "not a valid duckdb")


def query_error(path: str | Path, exc: duckdb.Error) -> BranchpointError:
    """One-line error for a failed query: a damaged file, or a query to fix."""
    message = first_line(exc)
    if isinstance(exc, duckdb.IOException) or any(d in message.lower() for d in _DAMAGE):
        return TraceDatabaseError(
            f"{path} is damaged or unreadable ({message}); restore it from a copy or "
            "query another --db"
        )
    return InvalidQueryError(f"{message}; fix the query (see the tables with SHOW TABLES)")


def require_db(path: str | Path) -> None:
    """Raise MissingDatabaseError when there is no trace database file at `path`."""
    if not Path(path).exists():
        raise MissingDatabaseError(
            f"no trace database at {path}; run a team first or pass --db with the right path"
        )


def readonly_query(
    db_path: str | Path, sql: str, params: list[Any] | None = None, max_rows: int | None = None
) -> Table:
    """Run read-only `sql` on the trace database at `db_path`, live or not.

    Returns (column names, rows), at most `max_rows` rows. Raises ReadOnlyQueryError for any statement that could write
    or read outside the database, MissingDatabaseError for a missing file, TraceDatabaseError
    for a damaged one, and DatabaseBusyError when a writer holds the file and cannot be reached.
    """
    statements = read_statements(sql)
    path = Path(db_path)
    require_db(path)
    store = open_store_for(path)
    if store is not None:
        return _run(path, lambda: store.read_only_query(statements, params, max_rows))
    try:
        con = connect(path, read_only=True)
    except duckdb.ConnectionException as exc:
        raise DatabaseBusyError(
            f"{path} is open in this process with another configuration ({first_line(exc)}); "
            "query it through the store that opened it"
        ) from None
    except duckdb.Error as exc:
        if is_lock_error(exc):
            return _via_sink(path, sql, params, exc, max_rows)
        raise TraceDatabaseError(
            f"cannot open {path} as a trace database ({first_line(exc)}); check the --db path"
        ) from None
    try:
        return _run(path, lambda: _execute(con, statements, params, max_rows))
    finally:
        con.close()


def _execute(
    con: duckdb.DuckDBPyConnection,
    statements: list[str],
    params: list[Any] | None,
    max_rows: int | None = None,
) -> Table:
    result: Table = ([], [])
    for i, statement in enumerate(statements):
        cursor = con.execute(statement, (params or []) if i == len(statements) - 1 else [])
        rows = fetch_rows(cursor, max_rows)
        if cursor.description is not None:
            result = ([d[0] for d in cursor.description], rows)
    return result


def _run(path: Path, execute: Callable[[], Table]) -> Table:
    try:
        return execute()
    except duckdb.Error as exc:
        raise query_error(path, exc) from None


def _via_sink(
    path: Path, sql: str, params: list[Any] | None, cause: Exception, max_rows: int | None
) -> Table:
    """Send the query to the live sink recorded next to `path` (in that sink's Ray cluster)."""
    import ray

    from branchpoint.telemetry.sink import find_sink, read_address

    address = read_address(path)
    busy = DatabaseBusyError(
        f"{path} is locked by a running process ({first_line(cause)}) and no live trace sink "
        "answers for it; wait for the run to finish and query again"
    )
    if address is None:
        raise busy
    connected_here = not ray.is_initialized()
    if connected_here:
        address_before = os.environ.get("RAY_ADDRESS")
        try:
            ray.init(
                address=address.gcs_address,
                namespace=address.namespace,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        except Exception as exc:
            raise busy from exc
        finally:
            # ray.init publishes the address it joined; do not leave it steering later inits.
            if address_before is None:
                os.environ.pop("RAY_ADDRESS", None)
    elif ray.get_runtime_context().gcs_address != address.gcs_address:
        raise DatabaseBusyError(
            f"{path} is written by a run in another Ray cluster ({address.gcs_address}) than "
            "this process is connected to; query it from a new process"
        )
    sink = find_sink(path)
    if sink is None:
        if connected_here:
            ray.shutdown()
        raise busy
    try:
        result: Table = ray.get(sink.read_only_query.remote(sql, params, max_rows))
    except ray.exceptions.RayTaskError as exc:
        original = getattr(exc, "cause", None)
        if isinstance(original, BranchpointError):
            raise type(original)(str(original)) from None
        raise DatabaseBusyError(
            f"the trace sink for {path} failed: {first_line(original or exc)}"
        ) from None
    return result
