"""One schema home: tables generated from the models, versions recorded, old files migrated."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from branchpoint.model import (
    INTERVENTION_ADAPTER,
    SCHEMA_VERSION,
    Hypothesis,
    Instruct,
    Outcome,
    Resample,
    SchemaVersionError,
    Step,
    SweepSpec,
    Verdict,
)
from branchpoint.telemetry import schema
from branchpoint.telemetry.store import DuckDBTraceStore

from .v1_schema import V1_DDL


def _stored_columns(store: DuckDBTraceStore) -> dict[str, dict[str, str]]:
    rows = store.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    )
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
    return out


def test_every_model_field_is_a_column_of_its_table_and_nothing_else() -> None:
    stored = _stored_columns(DuckDBTraceStore(":memory:"))
    for table, (model, key) in schema.PIPELINE_MODELS.items():
        expected = [*model.model_fields, *model.model_computed_fields]
        assert list(stored[table]) == expected, table
        assert set(key) <= set(expected)
    assert stored["outcomes"]["input_tokens"] == "BIGINT"
    assert stored["hypotheses"]["confidence"] == "DOUBLE"
    assert stored["sweeps"]["created_at"] == "TIMESTAMP"
    assert stored["sweeps"]["spec"] == "JSON"
    assert stored["interventions"]["payload"] == "JSON"
    assert list(stored["spans"]) == list(schema.SPAN_COLUMNS)


def test_ids_are_computed_fields_in_every_dump_and_dumps_validate_back() -> None:
    hyp = Hypothesis(run_id="r", agent="Solver", step=2, reason="x", method="m")
    assert hyp.model_dump()["hypothesis_id"] == hyp.hypothesis_id
    assert Hypothesis.model_validate(hyp.model_dump()) == hyp
    iv = Instruct(step=3, instruction="recompute 4*5")
    dumped = iv.model_dump(mode="json")
    assert dumped["intervention_id"] == iv.intervention_id
    assert dumped["schema_version"] == SCHEMA_VERSION
    assert INTERVENTION_ADAPTER.validate_python(dumped) == iv
    # Ids name the content, as they did before they were computed fields (schema version 1).
    assert Instruct(step=3, instruction="do it").intervention_id == "iv-73381092eac3b475"
    same = Hypothesis(run_id="r", agent="a", step=1, reason="x", method="m")
    assert same.hypothesis_id == "hyp-197d98c7e4fed03b"
    verdict = Verdict(
        hypothesis_id="h",
        run_id="r",
        intervention_id="i",
        label="refuted",
        n=3,
        successes=0,
        fulfilled=3,
        mean_progress=0.0,
        wilson_low=0.0,
        wilson_high=0.5,
        control_n=4,
        control_successes=1,
    )
    assert verdict.model_dump()["control_rate"] == 0.25


def test_persisted_json_shapes_carry_their_version_and_newer_ones_are_refused() -> None:
    step = Step(run_id="r", index=0, agent="Planner", kind="plan", content="1. add")
    for record in (step, SweepSpec(where="status = 'failed'"), Resample(step=1)):
        assert json.loads(record.model_dump_json())["schema_version"] == SCHEMA_VERSION
    assert Step.model_validate_json(step.model_dump_json()) == step
    old = json.loads(step.model_dump_json())
    del old["schema_version"]  # written before versions were recorded: version 1
    assert Step.model_validate(old) == step
    with pytest.raises(SchemaVersionError, match="newer than this branchpoint"):
        SweepSpec.model_validate({"where": None, "schema_version": SCHEMA_VERSION + 1})


def _write_v1_database(path: Path) -> None:
    """A trace database as branchpoint wrote it at schema version 1, with one run's rows."""
    con = duckdb.connect(str(path))
    for statement in V1_DDL:
        con.execute(statement)
    con.execute("INSERT INTO schema_meta VALUES ('schema_version', '1')")
    run_attrs = {
        "branchpoint.kind": "run",
        "branchpoint.run_id": "run-old",
        "branchpoint.team": "math",
        "branchpoint.task_id": "t1",
        "branchpoint.task": json.dumps({"task_id": "t1", "question": "2+3?", "answer": "5"}),
        "gen_ai.request.model": "sim",
        "branchpoint.status": "failed",
        "branchpoint.success": False,
        "branchpoint.seed": 7,
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 12,
    }
    step_attrs = {
        "branchpoint.kind": "step",
        "branchpoint.run_id": "run-old",
        "branchpoint.step": 0,
        "gen_ai.agent.name": "Solver",
        "branchpoint.step_kind": "message",
        "branchpoint.content": "4+1=6",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 4,
    }
    t0 = datetime(2025, 1, 1)
    for span_id, kind, step, attrs in (
        ("a" * 16, "run", None, run_attrs),
        ("b" * 16, "step", 0, step_attrs),
    ):
        con.execute(
            "INSERT INTO spans (span_id, trace_id, name, kind, run_id, step, start_time, "
            "end_time, duration_ms, attributes) VALUES (?, ?, ?, ?, 'run-old', ?, ?, ?, 1500, ?)",
            [span_id, "c" * 32, kind, kind, step, t0, t0, json.dumps(attrs)],
        )
    con.execute(
        "INSERT INTO outcomes (fork_run_id, parent_run_id, intervention_id, intervention_kind, "
        "step, repeat, success, milestones_achieved, milestones_total, progress_delta, "
        "fulfilled, input_tokens, output_tokens, seconds, hypothesis_id, sweep_id) VALUES "
        "('item-1234.ab12cd', 'run-old', 'iv-1', 'resample', 0, 0, true, 1, 2, 0.5, true, "
        "5, 6, 0.1, NULL, 'sweep-1')"
    )
    con.execute(
        "INSERT INTO llm_records VALUES ('h1', 'sim', '{\"m\": 1}', '{\"t\": \"6\"}', ?)", [t0]
    )
    con.close()


def test_a_schema_version_1_database_opens_migrated_with_its_rows_intact(tmp_path: Path) -> None:
    db = tmp_path / "v1.duckdb"
    _write_v1_database(db)
    store = DuckDBTraceStore(db)
    assert store.query(schema.VERSION_READ) == [{"value": str(SCHEMA_VERSION)}]
    run = store.query("SELECT * FROM runs")[0]
    assert (run["run_id"], run["team"], run["model"], run["status"]) == (
        "run-old",
        "math",
        "sim",
        "failed",
    )
    assert (run["success"], run["seed"], run["question"], run["n_steps"]) == (False, 7, "2+3?", 1)
    assert run["input_tokens"] == 30 and run["seconds"] == 1.5
    step = store.query("SELECT agent, kind, content, tokens FROM steps")
    assert step == [{"agent": "Solver", "kind": "message", "content": "4+1=6", "tokens": 14}]
    hot = store.query("SELECT agent, step_kind FROM spans WHERE kind = 'step'")
    assert hot == [{"agent": "Solver", "step_kind": "message"}]
    outcome = store.query("SELECT * FROM outcomes")[0]
    assert outcome["item_id"] == "item-1234"
    assert Outcome.model_validate(outcome).fork_run_id == "item-1234.ab12cd"
    record = store.get_llm_record("h1")
    assert record is not None and record["response"] == {"t": "6"}
    assert store.query("SELECT schema_version FROM llm_records") == [{"schema_version": 1}]
    store.close()
    # Opening again is a no-op: the columns are there and nothing is backfilled twice.
    again = DuckDBTraceStore(db)
    assert again.query("SELECT count(*) AS n FROM spans") == [{"n": 2}]
    again.close()


def test_a_newer_database_is_refused_with_one_line_and_left_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    DuckDBTraceStore(db).close()
    con = duckdb.connect(str(db))
    con.execute("UPDATE schema_meta SET value = ?", [str(SCHEMA_VERSION + 1)])
    con.close()
    before = db.read_bytes()
    with pytest.raises(SchemaVersionError) as err:
        DuckDBTraceStore(db)
    assert "\n" not in str(err.value) and "upgrade branchpoint" in str(err.value)
    assert db.read_bytes() == before
