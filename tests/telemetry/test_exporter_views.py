"""Spans through a real TracerProvider + BatchSpanProcessor into a DuckDB file, and the views."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.export import export_otlp_file
from branchpoint.telemetry.exporter import StoreSpanExporter, span_to_row, spans_to_table
from branchpoint.telemetry.store import DuckDBTraceStore, spans_table
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run


def _captured(run_id: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    emit_run(provider, run_id)
    return list(memory.get_finished_spans())


def test_span_to_row_keeps_ids_parent_and_attributes() -> None:
    spans = _captured("r1")
    rows = {r["name"]: r for r in map(span_to_row, spans)}
    run, chat = rows["branchpoint.run"], rows["chat sim"]
    assert run["parent_span_id"] is None and run["kind"] == "run" and run["run_id"] == "r1"
    assert len(run["trace_id"]) == 32 and len(run["span_id"]) == 16
    assert chat["trace_id"] == run["trace_id"] and chat["kind"] == "chat"
    assert chat["duration_ms"] >= 0 and chat["status_code"] == "UNSET"


def test_a_batch_converts_column_by_column_to_the_rows_span_to_row_gives() -> None:
    spans = _captured("r1")
    foreign = TracerProvider()
    memory = InMemorySpanExporter()
    foreign.add_span_processor(SimpleSpanProcessor(memory))
    # A foreign tracer's types: the step as text, a flag as text, a number as a model name.
    attrs = {"branchpoint.step": "4", "branchpoint.success": "true", "gen_ai.request.model": 7}
    with foreign.get_tracer("x").start_as_current_span("odd", attributes=attrs):
        pass
    spans += list(memory.get_finished_spans())
    table = spans_to_table(spans)
    assert table.equals(spans_table([span_to_row(s) for s in spans]))
    odd = next(row for row in table.to_pylist() if row["name"] == "odd")
    assert (odd["step"], odd["success"], odd["model"]) == (4, True, "7")
    assert spans_to_table([]).num_rows == 0


def test_round_trip_through_batch_processor_into_a_file(tmp_path: Path) -> None:
    store = DuckDBTraceStore(tmp_path / "traces.duckdb")
    provider = setup_tracing(store, "test")
    made = emit_run(provider, "r1") + emit_run(provider, "r2", **{"branchpoint.success": True})
    assert flush(provider)
    provider.shutdown()
    store.close()
    reopened = DuckDBTraceStore(tmp_path / "traces.duckdb")
    assert reopened.query("SELECT count(*) AS n FROM spans") == [{"n": made}]
    orphans = reopened.query(
        "SELECT c.span_id FROM spans c LEFT JOIN spans p ON p.span_id = c.parent_span_id "
        "WHERE c.parent_span_id IS NOT NULL AND p.span_id IS NULL"
    )
    assert orphans == []
    resource = reopened.query("SELECT DISTINCT resource->>'$.\"service.name\"' AS s FROM spans")
    assert resource == [{"s": "test"}]


def test_double_export_stores_each_span_once() -> None:
    store = DuckDBTraceStore(":memory:")
    spans = _captured("r1")
    exporter = StoreSpanExporter(store)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert store.query("SELECT count(*) AS n FROM spans") == [{"n": len(spans)}]


def test_exporter_never_raises_into_traced_code() -> None:
    store = DuckDBTraceStore(":memory:")
    store.close()
    assert StoreSpanExporter(store).export(_captured("r1")) == SpanExportResult.FAILURE


def _store_with_runs() -> DuckDBTraceStore:
    store = DuckDBTraceStore(":memory:")
    provider = setup_tracing(store, "test")
    emit_run(provider, "root")
    emit_run(
        provider,
        "fork1",
        **{
            "branchpoint.parent_run_id": "root",
            "branchpoint.fork_step": 1,
            "branchpoint.intervention_id": "iv-1",
            "branchpoint.success": True,
        },
    )
    emit_run(
        provider, "fork2", **{"branchpoint.parent_run_id": "fork1", "branchpoint.fork_step": 2}
    )
    flush(provider)
    provider.shutdown()
    return store


def test_runs_view() -> None:
    rows = {r["run_id"]: r for r in _store_with_runs().query("SELECT * FROM runs")}
    assert set(rows) == {"root", "fork1", "fork2"}
    root = rows["root"]
    assert root["team"] == "math" and root["question"] == "What is 2+3?"
    assert root["ground_truth"] == "5" and root["model"] == "sim" and root["seed"] == 7
    assert root["success"] is False and root["final_answer"] == "6" and root["n_steps"] == 3
    assert root["input_tokens"] == 30 and root["seconds"] >= 0 and root["parent_run_id"] is None
    assert '"wrong_operand"' in root["faults"]
    assert rows["fork1"]["fork_step"] == 1 and rows["fork1"]["success"] is True


def test_steps_llm_and_tool_views() -> None:
    store = _store_with_runs()
    steps = store.query("SELECT * FROM steps WHERE run_id = 'root' ORDER BY step")
    assert [(s["step"], s["agent"], s["kind"]) for s in steps] == [
        (0, "Planner", "message"),
        (1, "Solver", "message"),
        (2, "Verifier", "final"),
    ]
    assert steps[1]["content"] == "[Solver] answer is 5" and steps[1]["tokens"] == 14
    assert steps[0]["checkpoint_id"] == "ckpt-0" and steps[0]["intervened"] is False
    chats = store.query(
        "SELECT c.*, s.step AS parent_step FROM llm_calls c JOIN steps s ON s.span_id = c.parent_span_id "
        "WHERE c.run_id = 'root' ORDER BY c.step"
    )
    assert [(c["step"], c["parent_step"], c["model"]) for c in chats] == [
        (0, 0, "sim"),
        (1, 1, "sim"),
        (2, 2, "sim"),
    ]
    assert chats[0]["prompt"] == "prompt 0" and chats[0]["cached"] is False
    tools = store.query("SELECT * FROM tool_calls WHERE run_id = 'root'")
    assert [(t["tool"], t["ok"], t["step"]) for t in tools] == [("calculator", True, 1)]
    hits = store.query("SELECT count(*) AS n FROM steps WHERE content ILIKE '%answer is 5%'")
    assert hits == [{"n": 3}]


def test_forks_view_finds_the_root() -> None:
    forks = _store_with_runs().query("SELECT * FROM forks ORDER BY run_id")
    assert [(f["run_id"], f["parent_run_id"], f["root_run_id"], f["depth"]) for f in forks] == [
        ("fork1", "root", "root", 1),
        ("fork2", "fork1", "root", 2),
    ]


def test_a_chat_span_stores_its_prompt_once_and_exports_restore_the_openinference_copy(
    tmp_path: Path,
) -> None:
    spans = _captured("r1")
    rows = {r["name"]: r for r in map(span_to_row, spans)}
    chat = json.loads(rows["chat sim"]["attributes"])
    prompt = chat[A.PROMPT]
    assert A.OI_INPUT not in chat and chat[A.MIRRORED] == [A.OI_INPUT, A.OI_OUTPUT]
    assert rows["chat sim"]["attributes"].count(json.dumps(prompt)[1:-1]) == 1
    store = DuckDBTraceStore(tmp_path / "t.duckdb")
    store.write_spans(spans_to_table(spans))
    store.close()
    export_otlp_file(tmp_path / "t.duckdb", tmp_path / "out.json")
    lines = (tmp_path / "out.json").read_text().splitlines()
    chats = [
        {kv["key"]: kv["value"].get("stringValue") for kv in span["attributes"]}
        for exported in map(json.loads, lines)
        for rs in exported["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
        if span["name"] == "chat sim"
    ]
    assert chats and prompt in [c[A.PROMPT] for c in chats]
    for values in chats:
        assert values[A.OI_INPUT] == values[A.PROMPT] and A.MIRRORED not in values
        assert values[A.OI_OUTPUT] == values[A.COMPLETION]


def test_an_openinference_value_unlike_its_source_is_stored_as_it_is() -> None:
    attrs = {A.PROMPT: "the prompt", A.OI_INPUT: "what Phoenix should show", A.CONTENT: "x"}
    stored = A.without_mirrors(dict(attrs))
    assert stored == attrs  # nothing repeated, nothing dropped
    step = A.without_mirrors({A.CONTENT: "an answer", A.OI_OUTPUT: "an answer"})
    assert step == {A.CONTENT: "an answer", A.MIRRORED: [A.OI_OUTPUT]}
    assert A.with_mirrors(step) == {A.CONTENT: "an answer", A.OI_OUTPUT: "an answer"}
