"""OTLP JSON import: our own export round-trips, and GenAI / OpenInference traces become runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from telemetry.spans import emit_run

from branchpoint.importers import import_path, read_path
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.export import export_otlp_file
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import setup_tracing

STEP_SQL = "SELECT run_id, step, agent, kind, content FROM steps ORDER BY run_id, step"
CALL_SQL = "SELECT run_id, step, agent, model, prompt, completion, input_tokens FROM llm_calls"
TOOL_SQL = "SELECT run_id, step, tool, input, output, ok FROM tool_calls"


def _exported(tmp_path: Path) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    store = DuckDBTraceStore(tmp_path / "source.duckdb")
    provider = setup_tracing(store, "otlp-test")
    emit_run(provider, "r1")
    emit_run(provider, "r2", **{A.STATUS: "succeeded", A.SUCCESS: True})
    provider.force_flush()
    provider.shutdown()
    steps = store.query(STEP_SQL)
    calls = store.query(CALL_SQL + " ORDER BY run_id, step")
    out = tmp_path / "out" / "traces.json"
    assert export_otlp_file(store.path, out) == 2 * 8
    store.close()
    return out, steps, calls


def test_export_then_import_gives_the_same_steps_and_calls(tmp_path: Path) -> None:
    out, steps, calls = _exported(tmp_path)
    target = DuckDBTraceStore(":memory:")
    report = import_path(target, "otlp", out)
    assert report.imported == ["r1", "r2"] and report.skipped == []
    assert target.query(STEP_SQL) == steps
    assert target.query(CALL_SQL + " ORDER BY run_id, step") == calls
    assert target.query(TOOL_SQL + " ORDER BY run_id") == [
        {"run_id": r, "step": 1, "tool": "calculator", "input": "2+3", "output": "5", "ok": True}
        for r in ("r1", "r2")
    ]
    runs = target.query("SELECT run_id, status, team, model, question, source FROM runs ORDER BY 1")
    assert [(r["run_id"], r["status"], r["team"], r["question"]) for r in runs] == [
        ("r1", "failed", "math", "What is 2+3?"),
        ("r2", "succeeded", "math", "What is 2+3?"),
    ]
    assert all(r["source"] == f"otlp:{out}" for r in runs)
    # a second import of the same file writes nothing new
    assert import_path(target, "otlp", out).imported == []
    assert len(target.query(STEP_SQL)) == len(steps)


def test_collector_file_lines_are_hex_and_camel_case(tmp_path: Path) -> None:
    out, _, _ = _exported(tmp_path)
    request = json.loads(out.read_text().splitlines()[0])
    span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16) >= 0
    assert span["startTimeUnixNano"].isdigit()
    assert {"key", "value"} <= set(span["attributes"][0])


def _kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        return {"stringValue": v}

    return [{"key": k, "value": value(v)} for k, v in attrs.items()]


def _span(span_id: str, parent: str | None, name: str, start: int, **attrs: Any) -> dict[str, Any]:
    span = {
        "traceId": "ab" * 16,
        "spanId": span_id * 8,
        "name": name,
        "startTimeUnixNano": str(start * 10**9),
        "endTimeUnixNano": str(start * 10**9 + 5 * 10**8),
        "attributes": _kv(attrs),
        "status": {"code": 0},
    }
    if parent:
        span["parentSpanId"] = parent * 8
    return span


def _request(spans: list[dict[str, Any]]) -> dict[str, Any]:
    resource = {"attributes": _kv({"service.name": "travel-team"})}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}


GENAI = [
    _span("01", None, "invoke_workflow trip", 0, **{"gen_ai.operation.name": "invoke_workflow"}),
    _span(
        "02",
        "01",
        "invoke_agent Planner",
        1,
        **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner"},
    ),
    _span(
        "03",
        "02",
        "chat gpt",
        2,
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-x",
            "gen_ai.usage.input_tokens": 7,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.completion": "Plan: fly",
        },
    ),
    _span(
        "04",
        "01",
        "invoke_agent Booker",
        3,
        **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Booker"},
    ),
    _span(
        "05",
        "04",
        "execute_tool book",
        4,
        **{
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "book",
            "gen_ai.tool.call.arguments": '{"to": "Oslo"}',
            "gen_ai.tool.call.result": "booked",
        },
    ),
]


def test_genai_spans_become_steps_with_llm_and_tool_calls(tmp_path: Path) -> None:
    path = tmp_path / "genai.json"
    path.write_text(json.dumps(_request(GENAI)))
    [log] = read_path("otlp", path)[0]
    assert log.run.run_id == "otlp-" + "ab" * 8 and log.run.team == "travel-team"
    assert [(s.index, s.agent, s.kind, s.content) for s in log.steps] == [
        (0, "Planner", "message", "Plan: fly"),
        (1, "Booker", "message", "booked"),
    ]
    assert [(c.step, c.agent, c.model, c.input_tokens) for c in log.llm_calls] == [
        (0, "Planner", "gpt-x", 7)
    ]
    assert [(t.tool, t.input, t.output, t.ok) for t in log.steps[1].tool_calls] == [
        ("book", '{"to": "Oslo"}', "booked", True)
    ]
    store = DuckDBTraceStore(":memory:")
    import_path(store, "otlp", path)
    assert store.query("SELECT count(*) AS n FROM llm_calls")[0]["n"] == 1
    assert store.query("SELECT tool FROM tool_calls") == [{"tool": "book"}]


def test_openinference_llm_spans_without_agents_are_steps_in_phoenix_shape(
    tmp_path: Path,
) -> None:
    """Phoenix's `/spans/otlpv1` page: snake_case keys under "data", OpenInference kinds."""
    spans = [
        {
            "trace_id": "cd" * 16,
            "span_id": "0" * 15 + "1",
            "name": "ChatCompletion",
            "start_time_unix_nano": 10**9,
            "end_time_unix_nano": 2 * 10**9,
            "attributes": [
                {"key": "openinference.span.kind", "value": {"string_value": "LLM"}},
                {"key": "llm.model_name", "value": {"string_value": "qwen"}},
                {"key": "output.value", "value": {"string_value": "42"}},
            ],
            "status": {"code": 2},
        },
        {
            "trace_id": "cd" * 16,
            "span_id": "0" * 15 + "2",
            "name": "search",
            "start_time_unix_nano": 3 * 10**9,
            "end_time_unix_nano": 4 * 10**9,
            "attributes": [
                {"key": "openinference.span.kind", "value": {"string_value": "TOOL"}},
                {"key": "tool.name", "value": {"string_value": "search"}},
            ],
        },
    ]
    path = tmp_path / "phoenix.json"
    path.write_text(json.dumps({"data": spans, "next_cursor": None}))
    [log] = read_path("otlp", path)[0]
    assert [(s.agent, s.kind, s.content) for s in log.steps] == [
        ("qwen", "message", "42"),
        ("tool", "tool_result", ""),
    ]
    assert log.run.status == "failed"  # a span had status ERROR


def test_a_folder_of_mixed_files_is_imported_with_a_summary(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "genai.json").write_text(json.dumps(_request(GENAI)))
    (tmp_path / "notes.txt").write_text("not a trace")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    report = import_path(DuckDBTraceStore(":memory:"), "otlp", tmp_path)
    assert len(report.imported) == 1
    assert report.summary().startswith("imported 1, already imported 0, skipped 2: notes.txt")
