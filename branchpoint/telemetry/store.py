"""Where spans and pipeline rows are stored: the `TraceStore` protocol and its DuckDB implementation.

`DuckDBTraceStore` is the only code that opens the trace database read-write. Inside a Ray
cluster it lives in the `TraceSink` actor; everything else reaches it through `SinkClient`,
which implements the same protocol.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import duckdb
import orjson
from pydantic import BaseModel, ValidationError

from branchpoint.errors import BranchpointError, first_line
from branchpoint.model import SCHEMA_VERSION, LLMRecord, check_schema_version
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry import schema

if TYPE_CHECKING:  # Arrow loads on first use: commands that only read (sql, report) skip it
    import pyarrow as pa


@cache
def _arrow_types() -> dict[str, pa.DataType]:
    """The Arrow type of each DDL type of the schema."""
    import pyarrow as pa

    return {
        "VARCHAR": pa.string(),
        "JSON": pa.string(),
        "INTEGER": pa.int64(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us"),
    }


CHECKPOINT_THRESHOLD = "256MB"

# Every connection to a trace database, the writer's included: no file outside the database
# (read_text, read_csv, glob, COPY, ATTACH), no extension installed or loaded, and no later
# SET may undo that. Live queries run on the writer's connection, so it obeys the same rules.
LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}

# LLM records are written in batches: one upsert per call would make the single sink the
# bottleneck of a sweep. Reads see buffered records, and every query and `close` writes them.
# An insert into a table with a primary key costs ~15 ms of CPU whatever its size (the key's
# index), so a batch is large: 1,024 records cost ~105 us each to write, 64 records ~480 us.
RECORD_BATCH = 1024
RECORD_FLUSH_SECONDS = 1.0

# Open writable stores of this process, by resolved path: DuckDB refuses a second, differently
# configured connection to the same file from one process, so read-only queries reuse these.
_OPEN_STORES: weakref.WeakValueDictionary[str, DuckDBTraceStore] = weakref.WeakValueDictionary()


class TraceStorageError(BranchpointError):
    """The trace database could not be written (disk full, file broken, permissions)."""

    exit_code = 1


class TraceDatabaseError(BranchpointError):
    """A `--db` path that is not (and cannot become) a DuckDB trace database."""


def is_lock_error(exc: BaseException) -> bool:
    """Whether opening a database failed because another process holds it (DuckDB's "Could not
    set lock on file"), as opposed to a broken file."""
    message = str(exc).lower()
    return "could not set lock" in message or "conflicting lock" in message


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to a trace database with `LOCKED_CONFIG`."""
    config = dict(LOCKED_CONFIG)
    if not read_only:
        config["checkpoint_threshold"] = CHECKPOINT_THRESHOLD
    return duckdb.connect(str(path), read_only=read_only, config=config)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _describe(header: bytes) -> str:
    if not header:
        return "it is empty"
    if header.startswith(_SQLITE_MAGIC):
        return "it is a SQLite file"
    return "its header is not DuckDB's"


def header_problem(path: Path) -> str | None:
    """Why the file at `path` cannot be a DuckDB database, by its kind and first bytes; None if
    it may be one (`path` exists)."""
    if not path.is_file():
        return "it is a folder" if path.is_dir() else "it is not a regular file"
    with path.open("rb") as f:
        header = f.read(16)
    if len(header) >= 12 and header[8:12] == b"DUCK":
        return None
    return _describe(header)


def not_a_trace_db(path: Path, why: str) -> TraceDatabaseError:
    """The one-line error for a --db that is no trace database (`why`: what it is instead)."""
    return TraceDatabaseError(
        f"{path} is not a branchpoint trace database ({why}); pass --db with the path of a "
        "run's .duckdb file, or restore it from a copy"
    )


def check_trace_db(path: str | Path) -> None:
    """Refuse a trace database path before anything is created or written.

    Passes for ":memory:", a path that can be created, and a readable DuckDB file of this or
    an older schema (also when a live run holds it). Raises `TraceDatabaseError` for anything
    else (a device, a directory, a non-DuckDB file, a corrupt or truncated one, a read-only
    location) and `SchemaVersionError` for a newer file; the file is never modified.
    """
    if str(path) == ":memory:":
        return
    p = Path(path)
    if not p.exists():
        parent = next(a for a in p.absolute().parents if a.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise TraceDatabaseError(
                f"cannot create trace database {p}: {parent} is not writable; "
                "pass --db on a writable path"
            )
        return
    if not p.is_file():
        raise TraceDatabaseError(
            f"--db {p} is not a regular file; pass the path of a .duckdb file (or a new one)"
        )
    problem = header_problem(p)
    if problem is not None:
        raise TraceDatabaseError(
            f"{p} is not a DuckDB database ({problem}); pass a new --db path or move the file away"
        )
    if not os.access(p, os.R_OK | os.W_OK):
        raise TraceDatabaseError(
            f"cannot write trace database {p} (read-only file or filesystem); "
            "pass --db on a writable path"
        )
    _check_readable(p)


def _check_readable(path: Path) -> None:
    """Open the file read-only (nothing is written) and read its schema version."""
    try:
        con = connect(path, read_only=True)
    except duckdb.Error as exc:
        if is_lock_error(exc):
            return  # a live run holds it: it is a working trace database
        raise TraceDatabaseError(
            f"{path} is not a readable DuckDB trace database ({first_line(exc)}); "
            "pass a new --db path or restore the file"
        ) from None
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_meta'"
        ).fetchall()
        stored = con.execute(schema.VERSION_READ).fetchall() if found[0][0] else []
    except duckdb.Error as exc:
        raise TraceDatabaseError(
            f"{path} is a damaged DuckDB file ({first_line(exc)}); "
            "pass a new --db path or restore the file"
        ) from None
    finally:
        con.close()
    if stored:
        check_schema_version(int(stored[0][0]), f"trace database {path}")


@runtime_checkable
class TraceStore(Protocol):
    """Stores spans, DoVer pipeline rows and recorded LLM calls; answers SQL."""

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows (see `exporter.span_to_row`) or a `spans_table` of them; a span id
        already stored is skipped."""
        ...

    def write_rows(self, table: str, rows: Sequence[Mapping[str, Any] | BaseModel]) -> int:
        """Upsert rows (row models or column mappings) into a pipeline table by its primary key."""
        ...

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL and return the rows as dicts."""
        ...

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record one LLM request/response under its request hash."""
        ...

    def put_llm_records(self, records: Mapping[str, dict[str, Any]]) -> None:
        """Record several LLM calls at once (request hash -> record)."""
        ...

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """The recorded LLM call for a request hash, or None."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


def _schema_of(columns: dict[str, str]) -> pa.Schema:
    import pyarrow as pa

    types = _arrow_types()
    return pa.schema([(name, types[ddl.split()[0]]) for name, ddl in columns.items()])


def _json_columns(columns: dict[str, str]) -> list[str]:
    return [name for name, ddl in columns.items() if ddl.split()[0] == "JSON"]


def fetch_rows(cursor: Any, max_rows: int | None = None) -> list[tuple[Any, ...]]:
    """A statement's rows (none for one without a result), at most `max_rows` of them: a result
    of millions of rows is not read whole to show its first page."""
    if cursor.description is None:
        return []
    return cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)


def json_text(value: Any) -> str:
    """JSON text for a JSON column or attribute: by orjson (a third of `json`'s time on a
    recorded request), values it cannot encode as their `str`; what it refuses (an integer past
    64 bits) by `json`."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_finite(value), default=str, separators=(",", ":"))


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as None, as orjson writes them (`json` would write `NaN`,
    which is not JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json_text(value)


def to_arrow(rows: list[dict[str, Any]], arrow_schema: pa.Schema, json_cols: set[str]) -> pa.Table:
    """Rows as an Arrow table, built column by column (faster than row-wise conversion).

    Dict/list values of JSON columns are serialised; strings pass through as JSON text.
    """
    import pyarrow as pa

    arrays = []
    for field in arrow_schema:
        values = [row.get(field.name) for row in rows]
        if field.name in json_cols:
            values = [_json_text(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


_HOT_COLUMNS = (*schema.HOT_ATTRIBUTES, *schema.TASK_COLUMNS)
_SPAN_JSON = set(_json_columns(schema.SPAN_COLUMNS))


def _as_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text == "true" else False if text == "false" else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


COERCE = {"VARCHAR": _as_text, "BOOLEAN": _as_bool, "BIGINT": _as_int, "INTEGER": _as_int}


def task_values(task: Any) -> dict[str, str | None]:
    """The task columns (`schema.TASK_COLUMNS`) of a run span's task attribute (JSON text)."""
    try:
        data = json.loads(task) if isinstance(task, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return dict.fromkeys(schema.TASK_COLUMNS)
    return {column: _as_text(data.get(field)) for column, field in schema.TASK_COLUMNS.items()}


def hot_values(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The `spans` hot columns (`schema.HOT_ATTRIBUTES`, `schema.TASK_COLUMNS`) of a span's
    attributes, typed."""
    return {
        **{
            column: COERCE[sql](attributes.get(key))
            for column, (key, sql) in schema.HOT_ATTRIBUTES.items()
        },
        **task_values(attributes.get(A.TASK)),
    }


def _with_hot_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A span row whose hot columns are filled from its attributes where the row lacks them
    (importers build rows with the base columns only)."""
    if all(column in row for column in _HOT_COLUMNS):
        return row
    attributes = row.get("attributes") or {}
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    return {**hot_values(attributes), **row}


def spans_table(rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Span rows as an Arrow table of the `spans` schema.

    Exporters convert on their side, so the single writer only inserts: conversion then runs in
    every traced process in parallel instead of in the sink.
    """
    import pyarrow as pa

    if not isinstance(rows, pa.Table):
        return to_arrow([_with_hot_columns(r) for r in rows], span_schema(), _SPAN_JSON)
    if not rows.schema.equals(span_schema()):
        raise ValueError(f"span table schema differs from the spans table's:\n{rows.schema}")
    return rows


def _uncounted_runs(table: pa.Table) -> bool:
    """Whether a span batch holds a run span without its step count."""
    import pyarrow.compute as pc

    runs = pc.equal(table["kind"], "run")
    return bool(pc.any(pc.and_kleene(runs, pc.is_null(table["n_steps"]))).as_py())


@cache
def span_schema() -> pa.Schema:
    """The Arrow schema of a `spans` batch."""
    return _schema_of(schema.SPAN_COLUMNS)


@cache
def _table_schema(table: str) -> pa.Schema:
    return _schema_of(schema.TABLES[table][0])


_TABLE_JSON = {t: set(_json_columns(cols)) for t, (cols, _) in schema.TABLES.items()}


def validated_rows(
    table: str, rows: Sequence[Mapping[str, Any] | BaseModel]
) -> list[dict[str, Any]]:
    """Rows of a pipeline table checked against its row model, as column -> value.

    A row is a model instance or a mapping of columns (JSON columns as values or JSON text);
    nested records are dumped with their `schema_version`.
    """
    if table not in schema.PIPELINE_MODELS:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(schema.TABLES)}")
    model, _ = schema.PIPELINE_MODELS[table]
    columns, json_cols = schema.TABLES[table][0], _TABLE_JSON[table]
    out = []
    for row in rows:
        if not isinstance(row, model):
            data = dict(row.model_dump() if isinstance(row, BaseModel) else row)
            unknown = set(data) - set(columns)
            if unknown:
                raise ValueError(f"{table} has no columns {sorted(unknown)}")
            for column in json_cols & set(data):
                if isinstance(data[column], str):
                    data[column] = json.loads(data[column])
            try:
                row = model.model_validate(data)
            except ValidationError as exc:
                raise ValueError(f"invalid {table} row: {exc}") from None
        dumped = row.model_dump()
        for column in json_cols:
            dumped[column] = _json(dumped[column])
        out.append(dumped)
    return out


def _storage_error(path: str, exc: BaseException) -> TraceStorageError:
    return TraceStorageError(
        f"could not write the trace database {path} ({first_line(exc)}); free disk space or "
        "fix the file, then run again with --resume"
    )


class DuckDBTraceStore:
    """A `TraceStore` on one DuckDB file (or ":memory:"), holding its only read-write connection.

    Opening a file of an older schema version migrates it (new columns added, rows kept); a
    newer one is refused with `SchemaVersionError`; a file that is not a DuckDB trace database
    with `TraceDatabaseError`, before anything is created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        check_trace_db(self.path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = connect(self.path)
        except duckdb.Error as exc:
            raise TraceDatabaseError(
                f"cannot open trace database {self.path} ({first_line(exc)}); "
                "pass another --db path or wait for the process that holds it"
            ) from None
        self._lock = threading.Lock()  # the exporter thread and the caller share one connection
        self._pending_records: dict[str, dict[str, Any]] = {}
        self._records_flushed = time.monotonic()
        try:
            self._migrate()
        except BaseException:
            self._con.close()
            raise
        if self.path != ":memory:":
            _OPEN_STORES[str(Path(self.path).resolve())] = self

    def _migrate(self) -> None:
        """Create or upgrade every table and view in one transaction (all or nothing)."""
        with self._lock:
            existing: dict[str, set[str]] = {}
            for table, column in self._run(schema.EXISTING_COLUMNS):
                existing.setdefault(table, set()).add(column)
            stored = self._run(schema.VERSION_READ) if "schema_meta" in existing else []
            statements = schema.migrations(int(stored[0][0]) if stored else None, existing)
            self._run("BEGIN TRANSACTION")
            try:
                for statement in statements:
                    self._run(statement)
                self._run(schema.VERSION_UPSERT, [str(SCHEMA_VERSION)])
            except BaseException:
                self._run("ROLLBACK")
                raise
            self._run("COMMIT")

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
            try:
                inserted = self._insert_spans(table)
            except duckdb.Error as exc:
                raise _storage_error(self.path, exc) from exc
        return int(inserted[0][0]) if inserted else 0

    def _insert_spans(self, table: pa.Table) -> list[tuple[Any, ...]]:
        self._con.register("_incoming_spans", table)
        try:
            try:
                inserted = self._run("INSERT INTO spans SELECT * FROM _incoming_spans")
            except duckdb.ConstraintException:
                # OR IGNORE also drops a span id repeated inside the batch itself.
                inserted = self._run("INSERT OR IGNORE INTO spans SELECT * FROM _incoming_spans")
            if _uncounted_runs(table):
                # A run span without `branchpoint.n_steps` (an importer's): count its steps.
                self._run(
                    schema.COUNT_STEPS.format(
                        only=" AND run_id IN (SELECT run_id FROM _incoming_spans "
                        "WHERE kind = 'run' AND n_steps IS NULL)"
                    )
                )
            return inserted
        finally:
            self._con.unregister("_incoming_spans")

    def write_rows(self, table: str, rows: Sequence[Mapping[str, Any] | BaseModel]) -> int:
        """Upsert rows (models or column mappings, checked against the table's row model) by
        primary key; returns the number of rows given."""
        checked = validated_rows(table, rows)
        if not checked:
            return 0
        with self._lock:
            self._upsert(table, checked)
        return len(checked)

    def _upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """INSERT OR REPLACE validated `rows` by the table's key (the caller holds the lock)."""
        dedup = ", ".join(schema.quote(c) for c in schema.TABLES[table][1])
        # Last row wins when one batch holds the same key twice.
        self._insert_rows(
            table,
            rows,
            "INSERT OR REPLACE INTO {table} ({names}) SELECT {names} FROM ("
            "SELECT *, row_number() OVER () AS _pos FROM _incoming_rows) "
            f"QUALIFY row_number() OVER (PARTITION BY {dedup} ORDER BY _pos DESC) = 1",
        )

    def _insert_rows(self, table: str, rows: list[dict[str, Any]], statement: str) -> None:
        """Run `statement` (with `{table}` and `{names}` filled in) over `rows` registered as
        `_incoming_rows` (the caller holds the lock)."""
        arrow = to_arrow(rows, _table_schema(table), _TABLE_JSON[table])
        names = ", ".join(schema.quote(c) for c in schema.TABLES[table][0])
        try:
            self._con.register("_incoming_rows", arrow)
            try:
                self._run(statement.format(table=table, names=names))
            finally:
                self._con.unregister("_incoming_rows")
        except duckdb.Error as exc:
            raise _storage_error(self.path, exc) from exc

    def _flush_records(self) -> None:
        """Write buffered LLM records (the caller holds the lock).

        A record is addressed by the hash of everything that determines its answer, so the first
        one stored for a hash stays (what replays were given): INSERT OR IGNORE, which costs half
        of an upsert's INSERT OR REPLACE with its de-duplicating window.
        """
        if self._pending_records:
            self._insert_rows(
                "llm_records",
                list(self._pending_records.values()),
                "INSERT OR IGNORE INTO {table} ({names}) SELECT {names} FROM _incoming_rows",
            )
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

    def query_arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL and return the result as an Arrow table (for exports: this connection cannot
        write files itself, see LOCKED_CONFIG)."""
        with self._lock:
            self._flush_records()
            return self._con.sql(sql, params=params).to_arrow_table()

    def read_only_query(
        self, statements: list[str], params: list[Any] | None = None, max_rows: int | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run already-vetted read statements inside a transaction that is always rolled back
        (the last one's rows, at most `max_rows` of them)."""
        result: tuple[list[str], list[tuple[Any, ...]]] = ([], [])
        with self._lock:
            self._flush_records()
            cursor = self._con.cursor()
            cursor.execute("BEGIN TRANSACTION").fetchall()
            try:
                for i, statement in enumerate(statements):
                    last = i == len(statements) - 1
                    cursor.execute(statement, (params or []) if last else [])
                    rows = fetch_rows(cursor, max_rows)
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
        self.put_llm_records({request_hash: record})

    def put_llm_records(self, records: Mapping[str, dict[str, Any]]) -> None:
        """Record several LLM calls (request hash -> record), buffered like `put_llm_record`."""
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = validated_rows(
            "llm_records",
            [
                LLMRecord(
                    request_hash=request_hash,
                    model=record.get("model"),
                    request=record.get("request"),
                    response=record.get("response"),
                    created_at=now,
                )
                for request_hash, record in records.items()
            ],
        )
        with self._lock:
            for row in rows:  # the first record of a hash stays (see `_flush_records`)
                self._pending_records.setdefault(row["request_hash"], row)
            stale = time.monotonic() - self._records_flushed > RECORD_FLUSH_SECONDS
            if stale or len(self._pending_records) >= RECORD_BATCH:
                self._flush_records()

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """The recorded call (`model`, `request`, `response`, `created_at`) or None."""
        with self._lock:
            # The stored record first: a buffered one under the same hash will not replace it.
            found = self._run(
                "SELECT model, request, response, created_at FROM llm_records "
                "WHERE request_hash = ?",
                [request_hash],
            )
            pending = self._pending_records.get(request_hash)
            if not found and pending is not None:
                found = [tuple(pending[k] for k in ("model", "request", "response", "created_at"))]
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
                try:
                    self._flush_records()
                finally:
                    self._con.close()
                    self._con = None  # type: ignore[assignment]


def _json(value: Any) -> str | None:
    return None if value is None else json_text(value)


def open_store_for(path: str | Path) -> DuckDBTraceStore | None:
    """The writable store this process already holds open for `path`, if any."""
    store = _OPEN_STORES.get(str(Path(path).resolve()))
    return store if store is not None and store._con is not None else None
