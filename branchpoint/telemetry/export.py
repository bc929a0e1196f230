"""Exporting a trace database: every table as Parquet, the spans to any OTLP collector, or the
spans as an OTLP JSON file.

OTLP export rebuilds each stored span with its original trace id, span id and parent, so a
collector (Jaeger, Phoenix, Langfuse) shows the same tree the run produced. The OTLP JSON file
is what a collector's file exporter writes (one `ExportTraceServiceRequest` per line, ids in
hex), so `branchpoint import otlp FILE` and other OpenTelemetry tools read it back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow.parquet as pq
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from branchpoint.errors import BranchpointError, DatabaseBusyError, UnknownRunError, first_line
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry import schema
from branchpoint.telemetry.query import readonly_query, require_db
from branchpoint.telemetry.store import (
    connect,
    header_problem,
    is_lock_error,
    not_a_trace_db,
    open_store_for,
)

EXPORT_TABLES = ("spans", *schema.TABLES)
OTLP_BATCH = 512
_EPOCH = datetime(1970, 1, 1)


class ExportError(BranchpointError):
    """An export target that cannot be written or reached."""


def _open_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the trace database at `path`, opened as `branchpoint sql` opens
    it (`store.LOCKED_CONFIG`: no extension is installed or loaded, nothing goes online)."""
    require_db(path)
    problem = header_problem(path)
    if problem is not None:
        raise not_a_trace_db(path, problem)
    try:
        return connect(path, read_only=True)
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise DatabaseBusyError(
                f"{path} is locked by a running process ({first_line(exc)}); "
                "export after the run finishes"
            ) from None
        raise not_a_trace_db(path, first_line(exc)) from None


def check_export_db(db_path: str | Path) -> None:
    """Refuse a --db that is missing, not DuckDB or damaged, before anything is written. A
    database a live run holds passes: its trace sink answers the queries."""
    path = Path(db_path)
    if open_store_for(path) is not None:
        return
    try:
        con = _open_readonly(path)
    except DatabaseBusyError:
        return
    try:
        con.execute("SELECT count(*) FROM spans").fetchall()
    except duckdb.Error as exc:
        raise not_a_trace_db(path, first_line(exc)) from None
    finally:
        con.close()


def _write_tables(path: Path, folder: Path) -> None:
    """Every exported table as `<folder>/<table>.parquet`, streamed through Arrow (a connection
    with `LOCKED_CONFIG` cannot COPY to files, and no path is pasted into SQL)."""
    store = open_store_for(path)
    if store is not None:
        for table in EXPORT_TABLES:
            pq.write_table(store.query_arrow(f"SELECT * FROM {table}"), folder / f"{table}.parquet")
        return
    con = _open_readonly(path)
    try:
        for table in EXPORT_TABLES:
            try:
                batches = con.sql(f"SELECT * FROM {table}").to_arrow_reader()
            except duckdb.Error as exc:
                raise not_a_trace_db(path, first_line(exc)) from None
            with pq.ParquetWriter(folder / f"{table}.parquet", batches.schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
    finally:
        con.close()


def _refuse_occupied(out: Path) -> None:
    """An existing target must be a folder whose `<table>.parquet` names are free or files."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"cannot write {out} (it is not a folder); choose a writable folder")
    for table in EXPORT_TABLES:
        file = out / f"{table}.parquet"
        if file.exists() and not file.is_file():
            raise ExportError(
                f"cannot write {file} (it is not a file); move it away or choose another folder"
            )


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.replace(out)
        return
    for file in staging.iterdir():
        file.replace(out / file.name)
    staging.rmdir()


def export_parquet(db_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write `spans` and every pipeline table as `<out_dir>/<table>.parquet`: all of them, or
    (on any failure) none and no folder this call created."""
    path, out = Path(db_path), Path(out_dir)
    _refuse_occupied(out)
    staging = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    created = [p for p in staging.parents if not p.exists()]  # innermost first
    try:
        staging.mkdir(parents=True)
        _write_tables(path, staging)
        _move_into_place(staging, out)
    except OSError as exc:
        raise ExportError(
            f"cannot write {out} ({exc.strerror or first_line(exc)}); choose a writable folder"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in created:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only while empty: a successful export left files in it
    return [out / f"{t}.parquet" for t in EXPORT_TABLES]


def _ns(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1) * 1000


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def _loads(text: str | None, empty: Any) -> Any:
    return json.loads(text) if text else empty


def row_to_span(row: dict[str, Any]) -> ReadableSpan:
    """Rebuild an SDK span from a `spans` row, keeping its ids and parent link."""
    context = _context(row["trace_id"], row["span_id"])
    parent = _context(row["trace_id"], row["parent_span_id"]) if row["parent_span_id"] else None
    return ReadableSpan(
        name=row["name"],
        context=context,
        parent=parent,
        resource=Resource(_loads(row["resource"], {})),
        attributes=A.with_mirrors(_loads(row["attributes"], {})),
        events=[
            Event(e["name"], e.get("attributes") or {}, e.get("timestamp"))
            for e in _loads(row["events"], [])
        ],
        links=[
            Link(_context(link["trace_id"], link["span_id"]), link.get("attributes") or {})
            for link in _loads(row["links"], [])
        ],
        kind=SpanKind[row["otel_kind"] or "INTERNAL"],
        status=Status(StatusCode[row["status_code"] or "UNSET"], row["status_message"]),
        start_time=_ns(row["start_time"]),
        end_time=_ns(row["end_time"]),
        instrumentation_scope=InstrumentationScope(row["scope"] or "branchpoint"),
    )


def _stored_spans(db_path: Path, run_id: str | None) -> list[dict[str, Any]]:
    """The stored span rows (of one run, or all) by start time; UnknownRunError for a run id
    the database does not hold."""
    sql = "SELECT * FROM spans" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY start_time"
    columns, rows = readonly_query(db_path, sql, [run_id] if run_id else None)
    if run_id and not rows:
        _, found = readonly_query(db_path, "SELECT 1 FROM runs WHERE run_id = ?", [run_id])
        if not found:
            raise UnknownRunError(
                f"no run {run_id} in {db_path}; see the recorded runs with "
                f'`branchpoint sql --db {db_path} "SELECT run_id FROM runs"`'
            )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector base URL or a full `/v1/traces` URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def check_collector_url(endpoint: str) -> None:
    """Refuse an --otlp value that is not an http(s) URL with a host."""
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ExportError(
            f"--otlp {endpoint} is not an http(s) URL; give the collector's OTLP/HTTP address, "
            "e.g. http://localhost:4318"
        )


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the OTLP exporter's retry logs: a failed send is reported as one error line."""
    logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_otlp(db_path: str | Path, endpoint: str, run_id: str | None = None) -> int:
    """Send the stored spans (of one run, or all) to an OTLP/HTTP collector; returns the count."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    check_collector_url(endpoint)
    spans = [row_to_span(r) for r in _stored_spans(Path(db_path), run_id)]
    exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=10)
    try:
        with _quiet_exporter():
            for i in range(0, len(spans), OTLP_BATCH):
                if exporter.export(spans[i : i + OTLP_BATCH]) != SpanExportResult.SUCCESS:
                    raise ExportError(
                        f"the collector at {traces_url(endpoint)} refused or did not answer; "
                        "check that it is running and accepts OTLP over HTTP"
                    )
    finally:
        exporter.shutdown()
    return len(spans)


_OTLP_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_OTLP_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def any_value(value: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue for a plain attribute value."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": str(value)}


def key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """OTLP/JSON attributes (`[{"key", "value"}]`), None values left out."""
    return [{"key": k, "value": any_value(v)} for k, v in attributes.items() if v is not None]


def otlp_span(row: dict[str, Any]) -> dict[str, Any]:
    """One `spans` row as an OTLP/JSON span (ids in hex, times in Unix nanoseconds as text)."""
    span: dict[str, Any] = {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
        "name": row["name"] or "",
        "kind": _OTLP_KINDS.get(row["otel_kind"] or "INTERNAL", 1),
        "startTimeUnixNano": str(_ns(row["start_time"]) or 0),
        "endTimeUnixNano": str(_ns(row["end_time"]) or 0),
        "attributes": key_values(A.with_mirrors(_loads(row["attributes"], {}))),
        "events": [
            {
                "timeUnixNano": str(e.get("timestamp") or 0),
                "name": e["name"],
                "attributes": key_values(e.get("attributes") or {}),
            }
            for e in _loads(row["events"], [])
        ],
        "status": {"code": _OTLP_STATUS.get(row["status_code"] or "UNSET", 0)},
    }
    if row["parent_span_id"]:
        span["parentSpanId"] = row["parent_span_id"]
    if row["status_message"]:
        span["status"]["message"] = row["status_message"]
    return span


def otlp_request(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest for span rows, grouped by resource and scope."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["resource"] or "{}", row["scope"] or "branchpoint"), []).append(row)
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for (resource, scope), spans in groups.items():
        by_resource.setdefault(resource, []).append(
            {"scope": {"name": scope}, "spans": [otlp_span(r) for r in spans]}
        )
    return {
        "resourceSpans": [
            {"resource": {"attributes": key_values(_loads(resource, {}))}, "scopeSpans": scopes}
            for resource, scopes in by_resource.items()
        ]
    }


def export_otlp_file(db_path: str | Path, out: str | Path, run_id: str | None = None) -> int:
    """Write the stored spans (of one run, or all) as OTLP JSON lines, whole or not at all;
    returns the span count."""
    rows = _stored_spans(Path(db_path), run_id)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"cannot write {out} (it is a folder); give a file path for --otlp-file")
    part = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with part.open("w", encoding="utf-8") as f:
            for i in range(0, len(rows), OTLP_BATCH):
                f.write(json.dumps(otlp_request(rows[i : i + OTLP_BATCH]), default=str) + "\n")
        part.replace(out)
    except OSError as exc:
        raise ExportError(f"cannot write {out} ({exc.strerror}); choose a writable path") from None
    finally:
        part.unlink(missing_ok=True)
    return len(rows)
