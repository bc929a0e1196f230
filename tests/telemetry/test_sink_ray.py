"""The sink actor on real Ray: driver and actor spans land in one file, linked by traceparent,
and read-only queries reach the live sink while it holds the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from branchpoint.errors import ReadOnlyQueryError
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.query import readonly_query
from branchpoint.telemetry.sink import SinkClient, close_sink, find_sink, get_or_create_sink
from branchpoint.telemetry.tracing import extract_context, flush, inject_context, setup_tracing

from .spans import chat_attributes, run_attributes, step_attributes

pytestmark = pytest.mark.ray


@ray.remote(num_cpus=0)
class ChatActor:
    """Stands in for an AgentHost: makes a chat span under the caller's step span."""

    def __init__(self, sink: ray.actor.ActorHandle) -> None:
        self.provider = setup_tracing(SinkClient(sink), "test-actor")

    def chat(self, carrier: dict[str, str], run_id: str, step: int) -> str:
        tracer = self.provider.get_tracer("test-actor")
        attrs = chat_attributes(run_id, step, "Solver", "prompt", "completion")
        with tracer.start_as_current_span(
            "chat sim", context=extract_context(carrier), attributes=attrs
        ):
            pass
        flush(self.provider)
        return ray.get_runtime_context().get_actor_id()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    # Workers import this module by the name pytest gave it: put its roots on their path.
    tests_dir = Path(__file__).resolve().parents[1]
    paths = os.pathsep.join([str(tests_dir.parent), str(tests_dir)])
    # This module needs its own runtime env: leave any Ray an earlier test module started.
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": paths}},
    )
    yield
    ray.shutdown()


def test_actor_chat_span_is_child_of_driver_step_span(ray_cluster: None, tmp_path: Path) -> None:
    db = tmp_path / "live.duckdb"
    sink = get_or_create_sink(db)
    assert get_or_create_sink(db)._actor_id == sink._actor_id  # one sink per file
    provider = setup_tracing(SinkClient(sink), "test-driver")
    tracer = provider.get_tracer("test-driver")
    actor = ChatActor.remote(sink)
    with tracer.start_as_current_span("branchpoint.run", attributes=run_attributes("r1")):
        for step in range(2):
            attrs = step_attributes("r1", step, "Solver", f"content {step}")
            with tracer.start_as_current_span("invoke_agent Solver", attributes=attrs) as span:
                ray.get(actor.chat.remote(inject_context(span), "r1", step))
    flush(provider)

    _, rows = readonly_query(
        db,
        "SELECT c.run_id, s.run_id AS step_run, c.step, s.step AS step_step, "
        "c.resource->>'$.\"service.name\"' AS svc FROM spans c JOIN spans s ON s.span_id = c.parent_span_id "
        "WHERE c.kind = 'chat' AND s.kind = 'step' ORDER BY c.step",
    )
    assert rows == [("r1", "r1", 0, 0, "test-actor"), ("r1", "r1", 1, 1, "test-actor")]
    assert readonly_query(db, "SELECT n_steps FROM runs")[1] == [(2,)]

    with pytest.raises(ReadOnlyQueryError):
        readonly_query(db, "DELETE FROM spans")
    with pytest.raises(ReadOnlyQueryError):
        readonly_query(db, "SELECT 1; DROP TABLE spans")
    assert readonly_query(db, "SELECT count(*) FROM spans")[1] == [(5,)]

    provider.shutdown()
    close_sink(sink)
    assert find_sink(db) is None
    assert readonly_query(
        db,
        f"SELECT count(*) FROM spans WHERE kind = 'chat' AND attributes->>'$.\"{A.RUN_ID}\"' = 'r1'",
    )[1] == [(2,)]


def test_a_client_of_a_sink_that_stopped_says_so(ray_cluster: None) -> None:
    """An agent host restarted after its sink stopped looks the sink up by name: the first write
    reports the stopped sink (what to do), not a host that failed to start."""
    from branchpoint.telemetry.sink import sink_name
    from branchpoint.telemetry.store import TraceStorageError

    client = SinkClient(sink_name("/nowhere/gone.duckdb"))  # constructing it does not look it up
    with pytest.raises(TraceStorageError, match="the trace sink stopped.*--resume"):
        client.put_llm_records({"h": {"model": "m", "request": [], "response": {}}})
