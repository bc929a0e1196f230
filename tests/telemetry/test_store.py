"""DuckDBTraceStore: idempotent span writes, pipeline upserts, the LLM record store, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from branchpoint.model import SCHEMA_VERSION, Hypothesis, Verdict
from branchpoint.telemetry.schema import SchemaVersionError
from branchpoint.telemetry.store import DuckDBTraceStore, TraceStore, spans_table


def _row(i: int, run_id: str = "r1") -> dict[str, object]:
    return {
        "span_id": f"{i:016x}",
        "trace_id": "a" * 32,
        "parent_span_id": None,
        "name": "chat sim",
        "kind": "chat",
        "run_id": run_id,
        "step": i,
        "attributes": {"branchpoint.run_id": run_id, "branchpoint.step": i},
    }


def test_write_spans_is_idempotent_by_span_id() -> None:
    store = DuckDBTraceStore(":memory:")
    assert isinstance(store, TraceStore)
    assert store.write_spans([_row(i) for i in range(10)]) == 10
    assert store.write_spans([_row(i) for i in range(5, 15)]) == 5
    assert store.write_spans([_row(20), _row(20)]) == 1
    assert store.query("SELECT count(*) AS n FROM spans") == [{"n": 16}]


def test_arrow_span_batches_are_stored_once_and_foreign_schemas_refused() -> None:
    store = DuckDBTraceStore(":memory:")
    table = spans_table([_row(i) for i in range(4)])
    assert store.write_spans(table) == 4
    assert store.write_spans(table) == 0
    with pytest.raises(ValueError, match="schema differs"):
        store.write_spans(pa.table({"span_id": ["x"]}))
    assert store.query("SELECT count(*) AS n FROM spans") == [{"n": 4}]


def test_attributes_are_queryable_json() -> None:
    store = DuckDBTraceStore(":memory:")
    store.write_spans([_row(3)])
    got = store.query("""SELECT attributes->>'$."branchpoint.step"' AS s FROM spans""")
    assert got == [{"s": "3"}]


def test_write_rows_upserts_by_primary_key() -> None:
    store = DuckDBTraceStore(":memory:")
    hyp = Hypothesis(run_id="r1", agent="Solver", step=2, reason="bad operand", method="m")
    row = {**hyp.model_dump(mode="json"), "hypothesis_id": hyp.hypothesis_id}
    assert store.write_rows("hypotheses", [row]) == 1
    store.write_rows("hypotheses", [{**row, "reason": "updated"}, {**row, "reason": "last"}])
    assert store.query("SELECT reason FROM hypotheses") == [{"reason": "last"}]
    verdict = Verdict(
        hypothesis_id=hyp.hypothesis_id,
        run_id="r1",
        intervention_id="iv-1",
        label="validated",
        n=3,
        successes=3,
        fulfilled=3,
        mean_progress=1.0,
        wilson_low=0.4,
        wilson_high=1.0,
        control_n=3,
        control_successes=1,
    )
    vrow = {**verdict.model_dump(mode="json"), "control_rate": verdict.control_rate}
    store.write_rows("verdicts", [vrow, vrow])
    assert store.query("SELECT label, control_rate FROM verdicts") == [
        {"label": "validated", "control_rate": pytest.approx(1 / 3)}
    ]
    plan = {"run_id": "r1", "intervention": {"kind": "resample", "step": 2}, "repeat": 1}
    store.write_rows(
        "sweep_items", [{"item_id": "i1", "sweep_id": "s", "payload": plan, "status": "planned"}]
    )
    got = store.query(
        "SELECT payload->>'$.repeat' AS r, payload->>'$.schema_version' AS v FROM sweep_items"
    )
    assert got == [{"r": "1", "v": str(SCHEMA_VERSION)}]


def test_write_rows_rejects_unknown_tables_and_columns() -> None:
    store = DuckDBTraceStore(":memory:")
    with pytest.raises(ValueError, match="unknown table"):
        store.write_rows("spans", [{"span_id": "x"}])
    with pytest.raises(ValueError, match="no columns"):
        store.write_rows("trials", [{"run_id": "r", "nope": 1}])
    with pytest.raises(ValueError, match="invalid trials row"):
        store.write_rows("trials", [{"run_id": "r", "index": "one", "start": 0, "end": 1}])


def test_llm_records_round_trip() -> None:
    store = DuckDBTraceStore(":memory:")
    assert store.get_llm_record("h1") is None
    store.put_llm_record("h1", {"model": "sim", "request": {"m": ["hi"]}, "response": {"t": "yo"}})
    got = store.get_llm_record("h1")
    assert got is not None and got["request"] == {"m": ["hi"]} and got["response"] == {"t": "yo"}


def test_buffered_llm_records_are_seen_by_reads_sql_and_a_reopened_file(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    store = DuckDBTraceStore(db)
    for i in range(3):  # fewer than a batch: still buffered
        store.put_llm_record(f"h{i}", {"model": "m", "request": [i], "response": {"n": i}})
    got = store.get_llm_record("h2")
    assert got is not None and got["response"] == {"n": 2} and got["created_at"] is not None
    assert store.query("SELECT count(*) AS n FROM llm_records") == [{"n": 3}]
    store.put_llm_record("h3", {"model": "m", "request": [3], "response": {"n": 3}})
    store.put_llm_records(  # a host's batch: one call
        {f"h{i}": {"model": "m", "request": [i], "response": {"n": i}} for i in (4, 5)}
    )
    store.close()
    reopened = DuckDBTraceStore(db)
    rows = reopened.query("SELECT request_hash FROM llm_records ORDER BY 1")
    assert [r["request_hash"] for r in rows] == ["h0", "h1", "h2", "h3", "h4", "h5"]
    again = reopened.get_llm_record("h3")
    assert again is not None and again["request"] == [3] and again["response"] == {"n": 3}


def test_schema_version_is_recorded_and_newer_files_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    store = DuckDBTraceStore(db)
    assert store.query("SELECT value FROM schema_meta") == [{"value": str(SCHEMA_VERSION)}]
    store.query("UPDATE schema_meta SET value = '999'")
    store.close()
    with pytest.raises(SchemaVersionError, match="upgrade branchpoint"):
        DuckDBTraceStore(db)


def test_the_first_record_of_a_request_hash_stays(tmp_path: Path) -> None:
    """A record is what replays of its request were given: a later one under the same hash
    (while buffered, or after the buffer was written) does not replace it."""
    store = DuckDBTraceStore(tmp_path / "r.duckdb")
    store.put_llm_record("h", {"model": "m", "request": [1], "response": {"n": 1}})
    store.put_llm_record("h", {"model": "m", "request": [1], "response": {"n": 2}})
    assert store.query("SELECT response->>'$.n' AS n FROM llm_records") == [{"n": "1"}]
    store.put_llm_record("h", {"model": "m", "request": [1], "response": {"n": 3}})
    got = store.get_llm_record("h")
    assert got is not None and got["response"] == {"n": 1}
    store.close()
    reopened = DuckDBTraceStore(tmp_path / "r.duckdb")
    assert reopened.query(
        "SELECT count(*) AS c, any_value(response->>'$.n') AS n FROM llm_records"
    ) == [{"c": 1, "n": "1"}]


def test_llm_records_keep_values_orjson_refuses_and_read_back_what_was_put(tmp_path: Path) -> None:
    store = DuckDBTraceStore(tmp_path / "t.duckdb")
    request = {"messages": [{"content": "é ✓"}], "n": 2**70, "by_id": {3: "three"}, "x": 0.5}
    store.put_llm_record("h1", {"model": "m", "request": request, "response": {"ok": True}})
    store.close()
    store = DuckDBTraceStore(tmp_path / "t.duckdb")
    got = store.get_llm_record("h1")
    assert got is not None
    assert got["request"] == {**request, "by_id": {"3": "three"}}  # JSON keys are text
    assert got["response"] == {"ok": True}
    [row] = store.query("SELECT request->>'$.n' AS n FROM llm_records")
    assert row["n"] == str(2**70)
    store.close()


def test_json_text_writes_nan_as_null_on_either_path() -> None:
    """orjson writes NaN as null; the `json` fallback (a value orjson refuses beside it) must too,
    or the text is not JSON and a JSON column refuses it."""
    from branchpoint.telemetry.store import json_text

    for value in ({"a": float("nan")}, {"a": float("nan"), "b": 2**70, "c": [float("inf")]}):
        parsed = json.loads(json_text(value), parse_constant=lambda c: pytest.fail(f"wrote {c}"))
        assert parsed["a"] is None and parsed.get("c", [None]) == [None]
