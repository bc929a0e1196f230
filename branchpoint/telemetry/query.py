"""Read-only SQL over a trace database, also while a run or sweep is writing to it.

DuckDB lets one process write a file, or many read it, never both. So a query first tries a
read-only connection; if a live writer holds the lock, it is sent to that writer (the
`TraceSink` actor) through Ray, where it runs vetted and inside a rolled-back transaction.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import duckdb

from branchpoint.errors import BranchpointError, DatabaseBusyError
from branchpoint.telemetry.readonly import InvalidQueryError, read_statements
from branchpoint.telemetry.store import open_store_for

Table = tuple[list[str], list[tuple[Any, ...]]]


class MissingDatabaseError(BranchpointError):
    """The trace database file does not exist."""


def readonly_query(db_path: str | Path, sql: str, params: list[Any] | None = None) -> Table:
    """Run read-only `sql` on the trace database; returns (column names, rows).

    Raises ReadOnlyQueryError for any statement that could write, MissingDatabaseError for a
    missing file and DatabaseBusyError when a writer holds the file and cannot be reached.
    """
    statements = read_statements(sql)
    path = Path(db_path)
    if not path.exists():
        raise MissingDatabaseError(
            f"no trace database at {path}; run a team first or pass --db with the right path"
        )
    store = open_store_for(path)
    if store is not None:
        return _run(lambda: store.read_only_query(statements, params))
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise MissingDatabaseError(f"cannot open {path} ({exc}); check the --db path") from exc
        return _via_sink(path, sql, params, exc)
    except duckdb.ConnectionException as exc:
        raise DatabaseBusyError(
            f"{path} is open in this process with another configuration ({exc}); "
            "query it through the store that opened it"
        ) from exc
    try:
        return _run(lambda: _execute(con, statements, params))
    finally:
        con.close()


def _execute(
    con: duckdb.DuckDBPyConnection, statements: list[str], params: list[Any] | None
) -> Table:
    result: Table = ([], [])
    for i, statement in enumerate(statements):
        cursor = con.execute(statement, (params or []) if i == len(statements) - 1 else [])
        rows = cursor.fetchall() if cursor.description is not None else []
        if cursor.description is not None:
            result = ([d[0] for d in cursor.description], rows)
    return result


def _run(execute: Any) -> Table:
    try:
        result: Table = execute()
    except duckdb.Error as exc:
        raise InvalidQueryError(f"{exc}; fix the query (see the tables with SHOW TABLES)") from exc
    return result


def _via_sink(path: Path, sql: str, params: list[Any] | None, cause: Exception) -> Table:
    """Send the query to the live sink that holds `path`, if a Ray cluster is reachable."""
    import ray

    from branchpoint.telemetry.sink import find_sink

    busy = DatabaseBusyError(
        f"{path} is locked by a running process and no live trace sink answers for it "
        f"({cause}); wait for the run to finish, or run the query from a process that can "
        "reach its Ray cluster (set RAY_ADDRESS)"
    )
    connected_here = not ray.is_initialized()
    address_before = os.environ.get("RAY_ADDRESS")
    if connected_here:
        try:
            ray.init(
                address="auto",
                namespace="branchpoint",
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        except Exception as exc:
            raise busy from exc
    sink = find_sink(path)
    if sink is None:
        if connected_here:
            ray.shutdown()
            # ray.init publishes the address it joined; do not leave it steering later inits.
            if address_before is None:
                os.environ.pop("RAY_ADDRESS", None)
        raise busy
    try:
        result: Table = ray.get(sink.read_only_query.remote(sql, params))
    except ray.exceptions.RayTaskError as exc:
        original = getattr(exc, "cause", None)
        if isinstance(original, BranchpointError):
            raise type(original)(str(original)) from None
        raise DatabaseBusyError(f"the trace sink for {path} failed: {original or exc}") from exc
    return result
