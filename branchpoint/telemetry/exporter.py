"""An OpenTelemetry `SpanExporter` that writes finished spans into a `TraceStore`.

Batching, retries and threading are the `BatchSpanProcessor`'s job; this class only turns
spans into rows (`span_to_row`, pure) and hands them to the store. It never raises into the
code being traced: a failed write is logged in one line, reported as `FAILURE`, and kept in
`error`, which `tracing.flush` raises so the command fails instead of reporting success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from branchpoint.errors import BranchpointError
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.store import (
    TraceStorageError,
    TraceStore,
    first_line,
    hot_values,
    spans_table,
)

log = logging.getLogger(__name__)


def _hex_trace(trace_id: int) -> str:
    return f"{trace_id:032x}"


def _hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


def _time(ns: int | None) -> datetime | None:
    # Naive UTC, as DuckDB's TIMESTAMP stores it.
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC).replace(tzinfo=None)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


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
    attrs = dict(span.attributes or {})
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
        "attributes": _json(attrs),
        "events": _json(
            [
                {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
                for e in span.events
            ]
        ),
        "links": _json(
            [
                {
                    "trace_id": _hex_trace(link.context.trace_id),
                    "span_id": _hex_span(link.context.span_id),
                    "attributes": dict(link.attributes or {}),
                }
                for link in span.links
            ]
        ),
        "resource": _json(dict(span.resource.attributes)),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        **hot_values(attrs),
    }


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
            self._store.write_spans(spans_table([span_to_row(s) for s in spans]))
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
