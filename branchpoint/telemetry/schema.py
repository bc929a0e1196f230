"""The trace database's schema: the `spans` table, the DoVer pipeline tables and the SQL views.

One DuckDB file holds everything. The pipeline tables are generated from the row models of
`branchpoint.model` (the one schema home); `spans` keeps every attribute whole as JSON and also
stores the hot ones (`HOT_ATTRIBUTES`) as typed columns at write time, so the views read columns
instead of parsing JSON. `migrations()` brings a file of an older `SCHEMA_VERSION` up to date.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Any, Literal, Union

from pydantic import BaseModel

from branchpoint.model import (
    SCHEMA_VERSION,
    Hypothesis,
    InterventionRecord,
    LLMRecord,
    Outcome,
    SchemaVersionError,
    SweepItem,
    SweepRecord,
    Trial,
    Verdict,
    check_schema_version,
)
from branchpoint.telemetry import attributes as A

__all__ = ["SCHEMA_VERSION", "SchemaVersionError"]

# Span attributes also stored as typed columns of `spans` (column -> attribute key, SQL type).
HOT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "agent": (A.AGENT_NAME, "VARCHAR"),
    "step_kind": (A.STEP_KIND, "VARCHAR"),
    "model": (A.REQUEST_MODEL, "VARCHAR"),
    "team": (A.TEAM, "VARCHAR"),
    "task_id": (A.TASK_ID, "VARCHAR"),
    "status": (A.STATUS, "VARCHAR"),
    "success": (A.SUCCESS, "BOOLEAN"),
    "final_answer": (A.FINAL_ANSWER, "VARCHAR"),
    "error": (A.ERROR, "VARCHAR"),
    "seed": (A.SEED, "BIGINT"),
    "parent_run_id": (A.PARENT_RUN_ID, "VARCHAR"),
    "fork_step": (A.FORK_STEP, "INTEGER"),
    "intervention_id": (A.INTERVENTION_ID, "VARCHAR"),
    "thread_id": (A.THREAD_ID, "VARCHAR"),
    "sweep_id": (A.SWEEP_ID, "VARCHAR"),
    "node_id": (A.NODE_ID, "VARCHAR"),
    "checkpoint_id": (A.CHECKPOINT_ID, "VARCHAR"),
    "intervened": (A.INTERVENED, "BOOLEAN"),
    "input_tokens": (A.INPUT_TOKENS, "BIGINT"),
    "output_tokens": (A.OUTPUT_TOKENS, "BIGINT"),
    "request_hash": (A.REQUEST_HASH, "VARCHAR"),
    "cached": (A.CACHED, "BOOLEAN"),
    "tool": (A.TOOL_NAME, "VARCHAR"),
    "tool_ok": (A.TOOL_OK, "BOOLEAN"),
    "n_steps": (A.N_STEPS, "INTEGER"),
}

# Fields of the task JSON a run span carries (`branchpoint.task`), stored as columns too.
TASK_COLUMNS: dict[str, str] = {"question": "question", "ground_truth": "answer"}

SPAN_COLUMNS: dict[str, str] = {
    "span_id": "VARCHAR PRIMARY KEY",
    "trace_id": "VARCHAR NOT NULL",
    "parent_span_id": "VARCHAR",
    "name": "VARCHAR",
    "kind": "VARCHAR",  # branchpoint.kind: run | step | chat | tool (NULL for foreign spans)
    "otel_kind": "VARCHAR",  # OpenTelemetry SpanKind: INTERNAL, CLIENT, ...
    "run_id": "VARCHAR",
    "step": "INTEGER",
    "start_time": "TIMESTAMP",
    "end_time": "TIMESTAMP",
    "duration_ms": "DOUBLE",
    "status_code": "VARCHAR",
    "status_message": "VARCHAR",
    "attributes": "JSON",
    "events": "JSON",
    "links": "JSON",
    "resource": "JSON",
    "scope": "VARCHAR",
    **{column: sql for column, (_, sql) in HOT_ATTRIBUTES.items()},
    **{column: "VARCHAR" for column in TASK_COLUMNS},
}

# Pipeline tables: the row model of each, and its primary key.
PIPELINE_MODELS: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "trials": (Trial, ("run_id", "index")),
    "hypotheses": (Hypothesis, ("hypothesis_id",)),
    "interventions": (InterventionRecord, ("intervention_id",)),
    "outcomes": (Outcome, ("fork_run_id",)),
    "verdicts": (Verdict, ("hypothesis_id", "intervention_id")),
    "sweeps": (SweepRecord, ("sweep_id",)),
    "sweep_items": (SweepItem, ("item_id",)),
    "llm_records": (LLMRecord, ("request_hash",)),
}

_SCALARS: dict[Any, str] = {
    str: "VARCHAR",
    int: "INTEGER",
    float: "DOUBLE",
    bool: "BOOLEAN",
    datetime: "TIMESTAMP",
}


def sql_type(annotation: Any, extra: Any = None) -> str:
    """The DuckDB type of a model field: scalars as themselves, anything nested as JSON."""
    if isinstance(extra, dict) and "sql_type" in extra:
        return str(extra["sql_type"])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return sql_type(options[0]) if len(options) == 1 else "JSON"
    if typing.get_origin(annotation) is Literal:
        return _SCALARS.get(type(typing.get_args(annotation)[0]), "JSON")
    return _SCALARS.get(annotation, "JSON")


def model_columns(model: type[BaseModel]) -> dict[str, str]:
    """Column -> SQL type for a row model: its fields, then its computed fields (the ids)."""
    columns = {
        name: sql_type(field.annotation, field.json_schema_extra)
        for name, field in model.model_fields.items()
    }
    for name, computed in model.model_computed_fields.items():
        columns[name] = sql_type(computed.return_type)
    return columns


TABLES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    table: (model_columns(model), key) for table, (model, key) in PIPELINE_MODELS.items()
}


def _q(name: str) -> str:
    """Quote an identifier (`index`, `start`, `end` are SQL keywords)."""
    return '"' + name.replace('"', '""') + '"'


def attr_expr(key: str) -> str:
    """SQL expression reading span attribute `key` as text."""
    return f"json_extract_string(attributes, '$.\"{key}\"')"


def attr(key: str, alias: str, cast: str | None = None) -> str:
    """SQL select item reading span attribute `key` as text (or cast), named `alias`."""
    expr = attr_expr(key)
    return f"TRY_CAST({expr} AS {cast}) AS {alias}" if cast else f"{expr} AS {alias}"


def _create_table(table: str) -> str:
    columns, key = TABLES[table]
    cols = ", ".join(f"{_q(c)} {t}" for c, t in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({', '.join(map(_q, key))}))"


_SPANS = (
    "CREATE TABLE IF NOT EXISTS spans ("
    + ", ".join(f"{_q(c)} {t}" for c, t in SPAN_COLUMNS.items())
    + ")"
)

META_TABLE = "CREATE TABLE IF NOT EXISTS schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"

_TASK = attr_expr(A.TASK)

RUNS_VIEW = f"""
CREATE OR REPLACE VIEW runs AS
SELECT s.run_id, s.team, s.task_id, s.question, s.ground_truth, s.model, s.seed, s.status, s.success, s.final_answer, s.error,
       s.parent_run_id, s.fork_step, s.intervention_id, s.thread_id,
       {attr(A.FAULTS, "faults", "JSON")},
       {attr(A.SOURCE, "source")},
       {attr(A.ANNOTATIONS, "annotations", "JSON")},
       s.sweep_id, s.input_tokens, s.output_tokens,
       s.duration_ms / 1000.0 AS seconds,
       s.start_time AS started_at,
       coalesce(s.n_steps, 0) AS n_steps,
       s.trace_id, s.span_id
FROM spans s WHERE s.kind = 'run'
"""

STEPS_VIEW = f"""
CREATE OR REPLACE VIEW steps AS
SELECT run_id, step, agent, step_kind AS kind,
       {attr(A.CONTENT, "content")},
       checkpoint_id, intervened, node_id, input_tokens, output_tokens,
       coalesce(input_tokens, 0) + coalesce(output_tokens, 0) AS tokens,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id
FROM spans WHERE kind = 'step'
"""

LLM_CALLS_VIEW = f"""
CREATE OR REPLACE VIEW llm_calls AS
SELECT run_id, step, agent, model, input_tokens, output_tokens,
       {attr(A.PROMPT, "prompt")},
       {attr(A.COMPLETION, "completion")},
       request_hash, cached, node_id,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id, parent_span_id
FROM spans WHERE kind = 'chat'
"""

TOOL_CALLS_VIEW = f"""
CREATE OR REPLACE VIEW tool_calls AS
SELECT run_id, step, tool,
       {attr(A.TOOL_INPUT, "input")},
       {attr(A.TOOL_OUTPUT, "output")},
       tool_ok AS ok, node_id,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id, parent_span_id
FROM spans WHERE kind = 'tool'
"""

# Lineage: every fork with its parent and the original run at the root of its fork tree.
FORKS_VIEW = """
CREATE OR REPLACE VIEW forks AS
WITH RECURSIVE lineage(run_id, parent_run_id, fork_step, intervention_id, root_run_id, depth) AS (
    SELECT run_id, parent_run_id, fork_step, intervention_id, parent_run_id, 1
    FROM runs WHERE parent_run_id IS NOT NULL
    UNION ALL
    SELECT l.run_id, l.parent_run_id, l.fork_step, l.intervention_id, r.parent_run_id, l.depth + 1
    FROM lineage l JOIN runs r ON r.run_id = l.root_run_id
    WHERE r.parent_run_id IS NOT NULL AND l.depth < 64
)
SELECT run_id, parent_run_id, fork_step, intervention_id, root_run_id, depth
FROM lineage
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY depth DESC) = 1
"""

VIEWS = ("runs", "steps", "llm_calls", "tool_calls", "forks")


def ddl() -> list[str]:
    """Statements that create every table and view of the current version; safe on every open."""
    return [
        META_TABLE,
        _SPANS,
        *(_create_table(t) for t in TABLES),
        RUNS_VIEW,
        STEPS_VIEW,
        LLM_CALLS_VIEW,
        TOOL_CALLS_VIEW,
        FORKS_VIEW,
    ]


def all_columns() -> dict[str, dict[str, str]]:
    """Every table of the current version: table -> column -> SQL type (keys stripped)."""
    tables = {t: columns for t, (columns, _) in TABLES.items()}
    tables["spans"] = {c: t.split()[0] for c, t in SPAN_COLUMNS.items()}
    return tables


def _hot_expression(column: str) -> str:
    """SQL computing a `spans` hot column from the span's JSON attributes."""
    if column in TASK_COLUMNS:
        return f"json_extract_string({_TASK}, '$.{TASK_COLUMNS[column]}')"
    key, sql = HOT_ATTRIBUTES[column]
    return f"TRY_CAST({attr_expr(key)} AS {sql})"


# A run's step count, for run spans written without `branchpoint.n_steps`.
COUNT_STEPS = """
UPDATE spans SET n_steps = c.n
FROM (SELECT run_id, count(*) AS n FROM spans WHERE kind = 'step'{only} GROUP BY run_id) c
WHERE spans.kind = 'run' AND spans.run_id = c.run_id AND spans.n_steps IS NULL
"""

# Values of columns added to a stored table, computed from what the older version stored.
BACKFILLS: dict[tuple[str, str], str] = {
    # Version 1 encoded the sweep item in the fork's run id ("<item>.<suffix>").
    ("outcomes", "item_id"): (
        "UPDATE outcomes SET item_id = split_part(fork_run_id, '.', 1) "
        "WHERE sweep_id IS NOT NULL AND item_id IS NULL"
    ),
    ("llm_records", "schema_version"): (
        "UPDATE llm_records SET schema_version = 1 WHERE schema_version IS NULL"
    ),
}


def backfills(added: dict[str, list[str]]) -> list[str]:
    """Statements filling the columns just added to stored tables (table -> columns)."""
    statements = []
    hot = [c for c in added.get("spans", []) if c in HOT_ATTRIBUTES or c in TASK_COLUMNS]
    computed = [c for c in hot if c != "n_steps"]
    if computed:
        sets = ", ".join(f"{_q(c)} = {_hot_expression(c)}" for c in computed)
        statements.append(f"UPDATE spans SET {sets}")
    if "n_steps" in hot:
        statements.append(COUNT_STEPS.format(only=""))
    for table, columns in added.items():
        statements += [BACKFILLS[(table, c)] for c in columns if (table, c) in BACKFILLS]
    return statements


def migrations(stored: int | None, existing: dict[str, set[str]]) -> list[str]:
    """Everything that brings a database of schema version `stored` (None: a new file) with
    the given stored tables up to `SCHEMA_VERSION`: new columns, their values computed from
    what was stored, then the current DDL (views included)."""
    if stored is not None:
        check_schema_version(stored, "the trace database")
    current = all_columns()
    added = {
        table: [c for c in columns if c not in existing[table]]
        for table, columns in current.items()
        if table in existing
    }
    alters = [
        f"ALTER TABLE {table} ADD COLUMN {_q(column)} {current[table][column]}"
        for table, columns in added.items()
        for column in columns
    ]
    return alters + ddl() + backfills(added)


EXISTING_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = 'main' AND table_catalog = current_database()"
)
VERSION_UPSERT = "INSERT OR REPLACE INTO schema_meta VALUES ('schema_version', ?)"
VERSION_READ = "SELECT value FROM schema_meta WHERE key = 'schema_version'"


def primary_key(table: str) -> tuple[str, ...]:
    """Primary-key columns of a pipeline table."""
    return TABLES[table][1]


def quote(name: str) -> str:
    """Quote an identifier for generated SQL."""
    return _q(name)
