"""Where spans and pipeline rows are stored: the `TraceStore` protocol and its DuckDB implementation.

`DuckDBTraceStore` is the only code that opens the trace database read-write. Inside a Ray
cluster it lives in the `TraceSink` actor; everything else reaches it through `SinkClient`,
which implements the same protocol.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from branchpoint.model import SCHEMA_VERSION
from branchpoint.telemetry import schema

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "INTEGER": pa.int64(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
}

CHECKPOINT_THRESHOLD = "256MB"

# LLM records are written in batches: one upsert per call would make the single sink the
# bottleneck of a sweep. Reads see buffered records, and every query and `close` writes them.
RECORD_BATCH = 64
RECORD_FLUSH_SECONDS = 1.0

# Open writable stores of this process, by resolved path: DuckDB refuses a second, differently
# configured connection to the same file from one process, so read-only queries reuse these.
_OPEN_STORES: weakref.WeakValueDictionary[str, DuckDBTraceStore] = weakref.WeakValueDictionary()


@runtime_checkable
class TraceStore(Protocol):
    """Stores spans, DoVer pipeline rows and recorded LLM calls; answers SQL."""

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows (see `exporter.span_to_row`) or a `spans_table` of them; a span id
        already stored is skipped."""
        ...

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Upsert rows into a pipeline table by its primary key."""
        ...

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL and return the rows as dicts."""
        ...

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record one LLM request/response under its request hash."""
        ...

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """The recorded LLM call for a request hash, or None."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


def _schema_of(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[ddl.split()[0]]) for name, ddl in columns.items()])


def _json_columns(columns: dict[str, str]) -> list[str]:
    return [name for name, ddl in columns.items() if ddl.split()[0] == "JSON"]


def _json_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json.dumps(value, default=str)


def to_arrow(rows: list[dict[str, Any]], arrow_schema: pa.Schema, json_cols: set[str]) -> pa.Table:
    """Rows as an Arrow table, built column by column (faster than row-wise conversion).

    Dict/list values of JSON columns are serialised; strings pass through as JSON text.
    """
    arrays = []
    for field in arrow_schema:
        values = [row.get(field.name) for row in rows]
        if field.name in json_cols:
            values = [_json_text(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


_SPAN_SCHEMA = _schema_of(schema.SPAN_COLUMNS)
_SPAN_JSON = set(_json_columns(schema.SPAN_COLUMNS))


def spans_table(rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Span rows as an Arrow table of the `spans` schema.

    Exporters convert on their side, so the single writer only inserts: conversion then runs in
    every traced process in parallel instead of in the sink.
    """
    if not isinstance(rows, pa.Table):
        return to_arrow(rows, _SPAN_SCHEMA, _SPAN_JSON)
    if not rows.schema.equals(_SPAN_SCHEMA):
        raise ValueError(f"span table schema differs from the spans table's:\n{rows.schema}")
    return rows


_TABLE_SCHEMAS = {t: _schema_of(cols) for t, (cols, _) in schema.TABLES.items()}


class DuckDBTraceStore:
    """A `TraceStore` on one DuckDB file (or ":memory:"), holding its only read-write connection."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(self.path)
        self._lock = threading.Lock()  # the exporter thread and the caller share one connection
        self._pending_records: dict[str, dict[str, Any]] = {}
        self._records_flushed = time.monotonic()
        self._migrate()
        if self.path != ":memory:":
            _OPEN_STORES[str(Path(self.path).resolve())] = self

    def _migrate(self) -> None:
        with self._lock:
            # Fewer automatic checkpoints while spans stream in; the WAL keeps every commit durable.
            self._run(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            self._run(schema.META_TABLE)
            stored = self._run(schema.VERSION_READ)
            schema.check_version(stored[0][0] if stored else None)
            for statement in schema.ddl():
                self._run(statement)
            self._run(schema.VERSION_UPSERT, [str(SCHEMA_VERSION)])

    def _run(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Execute and fully consume one statement (DuckDB wants every result finished)."""
        return self._con.execute(sql, params or []).fetchall()

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Insert span rows, skipping span ids already stored; returns the number inserted.

        A plain INSERT first: a batch exported twice is rare, and the conflict-free path is
        faster than INSERT OR IGNORE. A key conflict fails the whole statement, which leaves
        the table unchanged, and the batch is then inserted skipping the stored ids.
        """
        table = spans_table(rows)
        if table.num_rows == 0:
            return 0
        with self._lock:
            self._con.register("_incoming_spans", table)
            try:
                try:
                    inserted = self._run("INSERT INTO spans SELECT * FROM _incoming_spans")
                except duckdb.ConstraintException:
                    # OR IGNORE also drops a span id repeated inside the batch itself.
                    inserted = self._run(
                        "INSERT OR IGNORE INTO spans SELECT * FROM _incoming_spans"
                    )
            finally:
                self._con.unregister("_incoming_spans")
        return int(inserted[0][0]) if inserted else 0

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Upsert rows into a pipeline table by primary key; returns the number of rows given."""
        if table not in schema.TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(schema.TABLES)}")
        if not rows:
            return 0
        columns, _ = schema.TABLES[table]
        unknown = {k for row in rows for k in row} - set(columns)
        if unknown:
            raise ValueError(f"{table} has no columns {sorted(unknown)}")
        with self._lock:
            self._upsert(table, rows)
        return len(rows)

    def _upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """INSERT OR REPLACE `rows` by the table's key (the caller holds the lock)."""
        columns, key = schema.TABLES[table]
        arrow = to_arrow(rows, _TABLE_SCHEMAS[table], set(_json_columns(columns)))
        names = ", ".join(schema.quote(c) for c in columns)
        dedup = ", ".join(schema.quote(c) for c in key)
        self._con.register("_incoming_rows", arrow)
        try:
            # Last row wins when one batch holds the same key twice.
            self._run(
                f"INSERT OR REPLACE INTO {table} ({names}) SELECT {names} FROM ("
                f"SELECT *, row_number() OVER () AS _pos FROM _incoming_rows) "
                f"QUALIFY row_number() OVER (PARTITION BY {dedup} ORDER BY _pos DESC) = 1"
            )
        finally:
            self._con.unregister("_incoming_rows")

    def _flush_records(self) -> None:
        """Write buffered LLM records (the caller holds the lock)."""
        if self._pending_records:
            self._upsert("llm_records", list(self._pending_records.values()))
            self._pending_records.clear()
        self._records_flushed = time.monotonic()

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL on the writable connection and return rows as dicts."""
        columns, rows = self.query_table(sql, params)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def query_table(
        self, sql: str, params: list[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL and return (column names, rows)."""
        with self._lock:
            self._flush_records()
            cursor = self._con.execute(sql, params or [])
            if cursor.description is None:
                return [], []
            return [d[0] for d in cursor.description], cursor.fetchall()

    def read_only_query(
        self, statements: list[str], params: list[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run already-vetted read statements inside a transaction that is always rolled back."""
        result: tuple[list[str], list[tuple[Any, ...]]] = ([], [])
        with self._lock:
            self._flush_records()
            cursor = self._con.cursor()
            cursor.execute("BEGIN TRANSACTION").fetchall()
            try:
                for i, statement in enumerate(statements):
                    last = i == len(statements) - 1
                    cursor.execute(statement, (params or []) if last else [])
                    rows = cursor.fetchall() if cursor.description is not None else []
                    if cursor.description is not None:
                        result = ([d[0] for d in cursor.description], rows)
            finally:
                cursor.execute("ROLLBACK").fetchall()
                cursor.close()
        return result

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record an LLM call: `record` holds `model`, `request` and `response`.

        Buffered and written in batches (see RECORD_BATCH); `get_llm_record` sees it at once.
        """
        row = {
            "request_hash": request_hash,
            "model": record.get("model"),
            "request": _json(record.get("request")),
            "response": _json(record.get("response")),
            "created_at": datetime.now(UTC).replace(tzinfo=None),
        }
        with self._lock:
            self._pending_records[request_hash] = row
            stale = time.monotonic() - self._records_flushed > RECORD_FLUSH_SECONDS
            if stale or len(self._pending_records) >= RECORD_BATCH:
                self._flush_records()

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """The recorded call (`model`, `request`, `response`, `created_at`) or None."""
        with self._lock:
            pending = self._pending_records.get(request_hash)
            if pending is not None:
                found = [tuple(pending[k] for k in ("model", "request", "response", "created_at"))]
            else:
                found = self._run(
                    "SELECT model, request, response, created_at FROM llm_records "
                    "WHERE request_hash = ?",
                    [request_hash],
                )
        if not found:
            return None
        model, request, response, created_at = found[0]
        return {
            "model": model,
            "request": json.loads(request) if request is not None else None,
            "response": json.loads(response) if response is not None else None,
            "created_at": created_at,
        }

    def close(self) -> None:
        """Checkpoint and close the connection; safe to call twice."""
        with self._lock:
            if self._con is not None:
                self._flush_records()
                self._con.close()
                self._con = None  # type: ignore[assignment]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def open_store_for(path: str | Path) -> DuckDBTraceStore | None:
    """The writable store this process already holds open for `path`, if any."""
    store = _OPEN_STORES.get(str(Path(path).resolve()))
    return store if store is not None and store._con is not None else None
