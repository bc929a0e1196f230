"""Exporting a trace database: every table as Parquet, the spans to any OTLP collector, or the
spans as an OTLP JSON file.

OTLP export rebuilds each stored span with its original trace id, span id and parent, so a
collector (Jaeger, Phoenix, Langfuse) shows the same tree the run produced. The OTLP JSON file
is what a collector's file exporter writes (one `ExportTraceServiceRequest` per line, ids in
hex), so `branchpoint import otlp FILE` and other OpenTelemetry tools read it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from branchpoint.errors import BranchpointError, first_line
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry import schema
from branchpoint.telemetry.query import readonly_query, require_db
from branchpoint.telemetry.store import open_store_for

EXPORT_TABLES = ("spans", *schema.TABLES)
OTLP_BATCH = 512
_EPOCH = datetime(1970, 1, 1)


class ExportError(BranchpointError):
    """An export target that cannot be written or reached."""


def copy_statements(out_dir: Path) -> list[tuple[str, Path]]:
    """(COPY statement, file) for every exported table."""
    return [
        (f"COPY {t} TO '{out_dir / f'{t}.parquet'!s}' (FORMAT PARQUET)", out_dir / f"{t}.parquet")
        for t in EXPORT_TABLES
    ]


def export_parquet(db_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write `spans` and every pipeline table as `<out_dir>/<table>.parquet`."""
    path, out = Path(db_path), Path(out_dir)
    require_db(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot write {out} ({exc.strerror}); choose a writable folder"
        ) from None
    copies = copy_statements(out)
    store = open_store_for(path)
    if store is not None:
        # The writer's connection cannot write files (store.LOCKED_CONFIG): copy through Arrow.
        for table, (_, file) in zip(EXPORT_TABLES, copies, strict=True):
            pq.write_table(store.query_arrow(f"SELECT * FROM {table}"), file)
        return [p for _, p in copies]
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise ExportError(
            f"{path} is locked by a running process ({exc}); export after the run finishes"
        ) from exc
    try:
        for statement, _ in copies:
            con.execute(statement).fetchall()
    except duckdb.IOException as exc:
        raise ExportError(
            f"cannot write the Parquet files in {out} ({first_line(exc)}); choose a writable folder"
        ) from None
    finally:
        con.close()
    return [p for _, p in copies]


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


def _stored_spans(db_path: Path, run_id: str | None) -> Iterator[dict[str, Any]]:
    sql = "SELECT * FROM spans" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY start_time"
    columns, rows = readonly_query(db_path, sql, [run_id] if run_id else None)
    for row in rows:
        yield dict(zip(columns, row, strict=True))


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector base URL or a full `/v1/traces` URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def export_otlp(db_path: str | Path, endpoint: str, run_id: str | None = None) -> int:
    """Send the stored spans (of one run, or all) to an OTLP/HTTP collector; returns the count."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spans = [row_to_span(r) for r in _stored_spans(Path(db_path), run_id)]
    exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=10)
    try:
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
    """Write the stored spans (of one run, or all) as OTLP JSON lines; returns the span count."""
    rows = list(_stored_spans(Path(db_path), run_id))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for i in range(0, len(rows), OTLP_BATCH):
                f.write(json.dumps(otlp_request(rows[i : i + OTLP_BATCH]), default=str) + "\n")
    except OSError as exc:
        raise ExportError(f"cannot write {out} ({exc.strerror}); choose a writable path") from exc
    return len(rows)
