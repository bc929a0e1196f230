"""`export_otlp` to a real collector (Arize Phoenix on 127.0.0.1), read back through its REST API:
same span count, same parent links; and a trace file Phoenix exports, imported as a run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import wait_until_serving

from branchpoint.telemetry.export import export_otlp
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run

pytestmark = pytest.mark.phoenix

STARTUP_TIMEOUT_S = (
    300.0  # Phoenix starts in ~30 s on an idle 2-core machine, far slower under load
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server on free 127.0.0.1 ports with a throwaway working dir; yields its URL."""
    workdir = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(
            proc, f"{url}/healthz", STARTUP_TIMEOUT_S, workdir / "server.log", "phoenix"
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _phoenix_spans(url: str, trace_id: str, expected: int) -> list[dict[str, object]]:
    """The spans Phoenix holds for a trace, polling while its bulk inserter catches up."""
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(
            f"{url}/v1/projects/default/spans",
            params={"trace_id": trace_id, "limit": 1000},
            timeout=10,
        ).json()["data"]
        if len(got) >= expected or time.monotonic() > deadline:
            return list(got)
        time.sleep(0.5)


def test_export_otlp_to_phoenix_keeps_count_and_parent_links(phoenix: str, tmp_path: Path) -> None:
    db = tmp_path / "traces.duckdb"
    store = DuckDBTraceStore(db)
    provider = setup_tracing(store, "phoenix-test")
    emit_run(provider, "r1")
    emit_run(provider, "r2")
    flush(provider)
    provider.shutdown()
    ours = store.query(
        "SELECT span_id, parent_span_id, trace_id, name FROM spans WHERE run_id = 'r1'"
    )
    store.close()

    assert export_otlp(db, phoenix, run_id="r1") == len(ours) == 8
    trace_id = ours[0]["trace_id"]
    theirs = _phoenix_spans(phoenix, str(trace_id), len(ours))
    assert len(theirs) == len(ours)
    assert {(s["context"]["span_id"], s["parent_id"], s["name"]) for s in theirs} == {  # type: ignore[index]
        (o["span_id"], o["parent_span_id"], o["name"]) for o in ours
    }


def _foreign_trace(url: str) -> str:
    """Spans of an instrumented agent (OpenInference and GenAI attributes, not branchpoint's),
    sent to Phoenix over OTLP/HTTP by a plain SDK provider; returns the trace id."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "travel-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces")))
    tracer = provider.get_tracer("instrumented-app")
    with tracer.start_as_current_span(
        "trip", attributes={"openinference.span.kind": "CHAIN", "input.value": "Book Oslo"}
    ) as root:
        for agent, answer in (("Planner", "fly on Monday"), ("Booker", "booked")):
            with (
                tracer.start_as_current_span(
                    f"invoke_agent {agent}",
                    attributes={
                        "openinference.span.kind": "AGENT",
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": agent,
                        "output.value": answer,
                    },
                ),
                tracer.start_as_current_span(
                    "chat",
                    attributes={
                        "openinference.span.kind": "LLM",
                        "llm.model_name": "gpt-x",
                        "llm.token_count.prompt": 11,
                        "llm.token_count.completion": 3,
                        "input.value": f"{agent}: what next?",
                        "output.value": answer,
                    },
                ),
            ):
                pass
        trace_id = f"{root.get_span_context().trace_id:032x}"
    provider.shutdown()
    return trace_id  # fmt: skip


def test_a_phoenix_trace_export_imports_as_a_run(phoenix: str, tmp_path: Path) -> None:
    from branchpoint.importers import import_path

    trace_id = _foreign_trace(phoenix)
    _phoenix_spans(phoenix, trace_id, 5)
    page = httpx.get(
        f"{phoenix}/v1/projects/default/spans/otlpv1",
        params={"trace_id": trace_id, "limit": 1000},
        timeout=10,
    )
    exported = tmp_path / "phoenix-export.json"
    exported.write_text(page.text)
    store = DuckDBTraceStore(":memory:")
    report = import_path(store, "otlp", exported)
    assert report.imported == [f"otlp-{trace_id[:16]}"]
    steps = store.query("SELECT step, agent, content FROM steps ORDER BY step")
    assert steps == [
        {"step": 0, "agent": "Planner", "content": "fly on Monday"},
        {"step": 1, "agent": "Booker", "content": "booked"},
    ]
    calls = store.query(
        "SELECT step, model, input_tokens, output_tokens FROM llm_calls ORDER BY step"
    )
    assert calls == [
        {"step": s, "model": "gpt-x", "input_tokens": 11, "output_tokens": 3} for s in (0, 1)
    ]
    [run] = store.query("SELECT team, question, status FROM runs")
    # Phoenix's export carries no resource attributes, so the team is the format's name
    assert (run["team"], run["question"], run["status"]) == (
        "otlp",
        "Book Oslo",
        "succeeded",
    )
