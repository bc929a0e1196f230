"""An OpenTelemetry `SpanExporter` that writes finished spans into a `TraceStore`.

Batching, retries and threading are the `BatchSpanProcessor`'s job; this class only turns a
batch of spans into one Arrow table (`spans_to_table`, pure, column by column: conversion runs
in every traced process, so the single writer only inserts) and hands it to the store. It never raises into the
code being traced: a failed write is logged in one line, reported as `FAILURE`, and kept in
`error`, which `tracing.flush` raises so the command fails instead of reporting success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from branchpoint.errors import BranchpointError
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry import schema
from branchpoint.telemetry.store import (
    COERCE,
    TraceStorageError,
    TraceStore,
    first_line,
    hot_values,
    json_text,
    span_schema,
    task_values,
)

log = logging.getLogger(__name__)


def _hex_trace(trace_id: int) -> str:
    return f"{trace_id:032x}"


def _hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


_EPOCH = datetime(1970, 1, 1)


def _time(ns: int | None) -> datetime | None:
    # Naive UTC, as DuckDB's TIMESTAMP stores it; microseconds truncated, as `_times` does.
    return None if ns is None else _EPOCH + timedelta(microseconds=ns // 1000)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def span_to_row(span: ReadableSpan) -> dict[str, Any]:
    """One `spans` table row for a finished span (ids as lowercase hex, times in UTC)."""
    context = span.get_span_context()
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    attrs = A.without_mirrors(dict(span.attributes or {}))
    start, end = span.start_time, span.end_time
    return {
        "span_id": _hex_span(context.span_id),
        "trace_id": _hex_trace(context.trace_id),
        "parent_span_id": _hex_span(span.parent.span_id) if span.parent else None,
        "name": span.name,
        "kind": attrs.get(A.KIND),
        "otel_kind": span.kind.name,
        "run_id": attrs.get(A.RUN_ID),
        "step": _int(attrs.get(A.STEP)),
        "start_time": _time(start),
        "end_time": _time(end),
        "duration_ms": (end - start) / 1e6 if start is not None and end is not None else None,
        "status_code": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": json_text(attrs),
        "events": _events_json(span),
        "links": _links_json(span),
        "resource": json_text(dict(span.resource.attributes)),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        **hot_values(attrs),
    }


def _attributes_of(span: ReadableSpan) -> dict[str, Any]:
    """A copy of a span's attributes: the SDK's mapping proxy copies its dict in C (`dict()`
    would iterate the attributes in Python)."""
    attrs = span.attributes
    if isinstance(attrs, MappingProxyType):
        return attrs.copy()
    return dict(attrs or {})


def _events_json(span: ReadableSpan) -> str:
    if not span.events:
        return "[]"
    return json_text(
        [
            {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ]
    )


def _links_json(span: ReadableSpan) -> str:
    if not span.links:
        return "[]"
    return json_text(
        [
            {
                "trace_id": _hex_trace(link.context.trace_id),
                "span_id": _hex_span(link.context.span_id),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ]
    )


def _typed(values: list[Any], arrow_type: pa.DataType, coerce: Callable[[Any], Any]) -> pa.Array:
    """`values` as an Arrow array; values of another type (a foreign tracer's) are coerced."""
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([coerce(v) for v in values], type=arrow_type)


_TIMESTAMP_US = pa.timestamp("us")


def _times(ns: list[int | None]) -> pa.Array:
    return pa.array(ns, type=pa.int64()).cast(pa.timestamp("ns")).cast(_TIMESTAMP_US, safe=False)


def spans_to_table(spans: Sequence[ReadableSpan]) -> pa.Table:
    """A batch of finished spans as one `spans` Arrow table, built column by column.

    The same rows as `span_to_row` gives one by one; a span without a context is dropped
    (the SDK never exports one).
    """
    spans = [s for s in spans if s.context is not None]
    attrs = [A.without_mirrors(_attributes_of(s)) for s in spans]
    resources: dict[int, str] = {}

    def resource_json(resource: Resource) -> str:
        key = id(resource)
        if key not in resources:
            resources[key] = json_text(dict(resource.attributes))
        return resources[key]

    schema_ = span_schema()
    starts, ends = [s.start_time for s in spans], [s.end_time for s in spans]
    start, end = _times(starts), _times(ends)
    duration = pc.divide(pc.subtract(pa.array(ends, pa.int64()), pa.array(starts, pa.int64())), 1e6)
    columns: dict[str, pa.Array] = {
        "span_id": pa.array([f"{s.context.span_id:016x}" for s in spans], pa.string()),
        "trace_id": pa.array([f"{s.context.trace_id:032x}" for s in spans], pa.string()),
        "parent_span_id": pa.array(
            [f"{s.parent.span_id:016x}" if s.parent else None for s in spans], pa.string()
        ),
        "name": pa.array([s.name for s in spans], pa.string()),
        "otel_kind": pa.array([s.kind.name for s in spans], pa.string()),
        "start_time": start,
        "end_time": end,
        "duration_ms": duration.cast(pa.float64()),
        "status_code": pa.array([s.status.status_code.name for s in spans], pa.string()),
        "status_message": pa.array([s.status.description for s in spans], pa.string()),
        "attributes": pa.array([json_text(a) for a in attrs], pa.string()),
        "events": pa.array([_events_json(s) for s in spans], pa.string()),
        "links": pa.array([_links_json(s) for s in spans], pa.string()),
        "resource": pa.array([resource_json(s.resource) for s in spans], pa.string()),
        "scope": pa.array(
            [s.instrumentation_scope.name if s.instrumentation_scope else None for s in spans],
            pa.string(),
        ),
    }
    hot = (
        ("kind", A.KIND, "VARCHAR"),
        ("run_id", A.RUN_ID, "VARCHAR"),
        ("step", A.STEP, "INTEGER"),
        *((c, k, t) for c, (k, t) in schema.HOT_ATTRIBUTES.items()),
    )
    keys = [key for _, key, _ in hot]
    # One C-level pass per span, then a transpose: faster than a list per column.
    values = list(zip(*[tuple(map(a.get, keys)) for a in attrs], strict=True)) or [()] * len(hot)
    for (column, _, sql), column_values in zip(hot, values, strict=True):
        field = schema_.field(column)
        columns[column] = _typed(list(column_values), field.type, COERCE[sql])
    tasks = [task_values(a.get(A.TASK)) if A.TASK in a else {} for a in attrs]
    for column in schema.TASK_COLUMNS:
        columns[column] = pa.array([t.get(column) for t in tasks], pa.string())
    return pa.Table.from_arrays([columns[f.name] for f in schema_], schema=schema_)


class StoreSpanExporter(SpanExporter):
    """Exports spans to a `TraceStore` (a `DuckDBTraceStore` or a `SinkClient`)."""

    def __init__(self, store: TraceStore) -> None:
        self._store = store
        self._shut_down = False
        self.error: BranchpointError | None = None  # the first failed write, if any

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one batch; a batch written twice is stored once."""
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            self._store.write_spans(spans_to_table(spans))
        except Exception as exc:  # noqa: BLE001 - never raise into the traced code
            error = (
                exc
                if isinstance(exc, BranchpointError)
                else TraceStorageError(f"could not store spans ({first_line(exc)})")
            )
            log.error("branchpoint: could not store %d spans: %s", len(spans), error)
            if self.error is None:
                self.error = error
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Refuse further batches; the store itself is closed by its owner."""
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here (the processor holds pending spans)."""
        return True
