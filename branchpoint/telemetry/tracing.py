"""Tracer setup and W3C trace-context propagation across Ray actors.

Each process (driver, agent actor) builds its own private `TracerProvider` with
`setup_tracing`; the global provider is left alone so libraries that trace themselves
(autogen) do not mix their spans into ours.
"""

from __future__ import annotations

import os
import weakref

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from branchpoint.errors import BranchpointError
from branchpoint.telemetry.exporter import StoreSpanExporter
from branchpoint.telemetry.store import TraceStore

# autogen-core traces its runtime through the global provider; its spans are noise next to ours.
os.environ.setdefault("AUTOGEN_DISABLE_RUNTIME_TRACING", "true")

_PROPAGATOR = TraceContextTextMapPropagator()

# Large batches: the store pays a commit per batch, so fewer, bigger batches ingest faster.
MAX_EXPORT_BATCH = 16_384
MAX_QUEUE = 65_536
SCHEDULE_DELAY_MS = 1000

# Each provider's exporter (for its storage error) and processor (for `share_tracing`).
_PIPELINES: weakref.WeakKeyDictionary[
    TracerProvider, tuple[StoreSpanExporter, BatchSpanProcessor]
] = weakref.WeakKeyDictionary()


def setup_tracing(
    store: TraceStore, service_name: str, id_generator: IdGenerator | None = None
) -> TracerProvider:
    """A private provider whose spans reach `store` through a `BatchSpanProcessor`
    (`id_generator`: where span and trace ids come from; random by default)."""
    exporter = StoreSpanExporter(store)
    processor = BatchSpanProcessor(
        exporter,
        max_queue_size=MAX_QUEUE,
        max_export_batch_size=MAX_EXPORT_BATCH,
        schedule_delay_millis=SCHEDULE_DELAY_MS,
    )
    return _provider(service_name, id_generator, exporter, processor)


def share_tracing(
    provider: TracerProvider, service_name: str, id_generator: IdGenerator | None = None
) -> TracerProvider:
    """A provider for another service in the same process whose spans join `provider`'s batches:
    one queue, one export thread and one store write per batch instead of two (in-process mode,
    where the driver and the agents would otherwise each pay a write per flush)."""
    return _provider(service_name, id_generator, *_PIPELINES[provider])


def _provider(
    service_name: str,
    id_generator: IdGenerator | None,
    exporter: StoreSpanExporter,
    processor: BatchSpanProcessor,
) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), id_generator=id_generator
    )
    _PIPELINES[provider] = (exporter, processor)
    provider.add_span_processor(processor)
    return provider


def storage_error(provider: TracerProvider) -> BranchpointError | None:
    """The first error of storing this provider's spans, if any batch failed to store."""
    pipeline = _PIPELINES.get(provider)
    return pipeline[0].error if pipeline is not None else None


def inject_context(span: trace.Span) -> dict[str, str]:
    """A W3C `traceparent` carrier for `span`, to send along with a Ray call."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def extract_context(carrier: dict[str, str] | None) -> Context:
    """The parent context carried by `carrier` (an empty context if there is none)."""
    return _PROPAGATOR.extract(carrier or {})


def flush(provider: TracerProvider, timeout_millis: int = 30_000) -> bool:
    """Export every finished span now; True when nothing was left pending.

    Raises the storage error (a `BranchpointError`, e.g. `TraceStorageError`) if any batch of
    this provider could not be stored, so a command never reports success over lost spans.
    """
    done = provider.force_flush(timeout_millis)
    error = storage_error(provider)
    if error is not None:
        raise type(error)(str(error))
    return done
