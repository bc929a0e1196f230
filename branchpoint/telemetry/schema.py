"""The trace database's schema: the `spans` table, the DoVer pipeline tables and the SQL views.

One DuckDB file holds everything; `ddl()` returns the statements that create (or upgrade) it.
Span attributes are kept whole as JSON, and the few every view filters on (`kind`, `run_id`,
`step`) are also typed columns so views and ad-hoc queries stay fast.
"""

from __future__ import annotations

from branchpoint.errors import BranchpointError
from branchpoint.model import SCHEMA_VERSION
from branchpoint.telemetry import attributes as A


class SchemaVersionError(BranchpointError):
    """The trace database was written by a newer branchpoint than the one reading it."""


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
}

# Pipeline tables: column -> type, and the primary key. Nested/list fields are JSON.
TABLES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "trials": (
        {"run_id": "VARCHAR", "index": "INTEGER", "start": "INTEGER", "end": "INTEGER"},
        ("run_id", "index"),
    ),
    "hypotheses": (
        {
            "hypothesis_id": "VARCHAR",
            "run_id": "VARCHAR",
            "agent": "VARCHAR",
            "step": "INTEGER",
            "reason": "VARCHAR",
            "method": "VARCHAR",
            "confidence": "DOUBLE",
            "trial": "INTEGER",
        },
        ("hypothesis_id",),
    ),
    "interventions": (
        {
            "intervention_id": "VARCHAR",
            "run_id": "VARCHAR",
            "hypothesis_id": "VARCHAR",
            "kind": "VARCHAR",
            "step": "INTEGER",
            "payload": "JSON",
            "sweep_id": "VARCHAR",
        },
        ("intervention_id",),
    ),
    "outcomes": (
        {
            "fork_run_id": "VARCHAR",
            "parent_run_id": "VARCHAR",
            "intervention_id": "VARCHAR",
            "intervention_kind": "VARCHAR",
            "step": "INTEGER",
            "repeat": "INTEGER",
            "success": "BOOLEAN",
            "milestones_achieved": "INTEGER",
            "milestones_total": "INTEGER",
            "progress_delta": "DOUBLE",
            "fulfilled": "BOOLEAN",
            "input_tokens": "BIGINT",
            "output_tokens": "BIGINT",
            "seconds": "DOUBLE",
            "hypothesis_id": "VARCHAR",
            "sweep_id": "VARCHAR",
        },
        ("fork_run_id",),
    ),
    "verdicts": (
        {
            "hypothesis_id": "VARCHAR",
            "run_id": "VARCHAR",
            "intervention_id": "VARCHAR",
            "label": "VARCHAR",
            "n": "INTEGER",
            "successes": "INTEGER",
            "fulfilled": "INTEGER",
            "mean_progress": "DOUBLE",
            "wilson_low": "DOUBLE",
            "wilson_high": "DOUBLE",
            "control_n": "INTEGER",
            "control_successes": "INTEGER",
            "control_rate": "DOUBLE",
        },
        ("hypothesis_id", "intervention_id"),
    ),
    "sweeps": (
        {"sweep_id": "VARCHAR", "created_at": "TIMESTAMP", "spec": "JSON", "status": "VARCHAR"},
        ("sweep_id",),
    ),
    "sweep_items": (
        {
            "item_id": "VARCHAR",
            "sweep_id": "VARCHAR",
            "payload": "JSON",
            "status": "VARCHAR",
            "fork_run_id": "VARCHAR",
            "updated_at": "TIMESTAMP",
        },
        ("item_id",),
    ),
    "llm_records": (
        {
            "request_hash": "VARCHAR",
            "model": "VARCHAR",
            "request": "JSON",
            "response": "JSON",
            "created_at": "TIMESTAMP",
        },
        ("request_hash",),
    ),
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
    + ", ".join(f"{c} {t}" for c, t in SPAN_COLUMNS.items())
    + ")"
)

META_TABLE = "CREATE TABLE IF NOT EXISTS schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"

_TASK = attr_expr(A.TASK)

RUNS_VIEW = f"""
CREATE OR REPLACE VIEW runs AS
SELECT s.run_id,
       {attr(A.TEAM, "team")},
       {attr(A.TASK_ID, "task_id")},
       json_extract_string({_TASK}, '$.question') AS question,
       json_extract_string({_TASK}, '$.answer') AS ground_truth,
       {attr(A.REQUEST_MODEL, "model")},
       {attr(A.SEED, "seed", "BIGINT")},
       {attr(A.STATUS, "status")},
       {attr(A.SUCCESS, "success", "BOOLEAN")},
       {attr(A.FINAL_ANSWER, "final_answer")},
       {attr(A.ERROR, "error")},
       {attr(A.PARENT_RUN_ID, "parent_run_id")},
       {attr(A.FORK_STEP, "fork_step", "INTEGER")},
       {attr(A.INTERVENTION_ID, "intervention_id")},
       {attr(A.THREAD_ID, "thread_id")},
       {attr(A.FAULTS, "faults", "JSON")},
       {attr(A.SWEEP_ID, "sweep_id")},
       {attr(A.INPUT_TOKENS, "input_tokens", "BIGINT")},
       {attr(A.OUTPUT_TOKENS, "output_tokens", "BIGINT")},
       s.duration_ms / 1000.0 AS seconds,
       s.start_time AS started_at,
       (SELECT count(*) FROM spans t WHERE t.kind = 'step' AND t.run_id = s.run_id) AS n_steps,
       s.trace_id, s.span_id
FROM spans s WHERE s.kind = 'run'
"""

STEPS_VIEW = f"""
CREATE OR REPLACE VIEW steps AS
SELECT run_id, step,
       {attr(A.AGENT_NAME, "agent")},
       {attr(A.STEP_KIND, "kind")},
       {attr(A.CONTENT, "content")},
       {attr(A.CHECKPOINT_ID, "checkpoint_id")},
       {attr(A.INTERVENED, "intervened", "BOOLEAN")},
       {attr(A.NODE_ID, "node_id")},
       {attr(A.INPUT_TOKENS, "input_tokens", "BIGINT")},
       {attr(A.OUTPUT_TOKENS, "output_tokens", "BIGINT")},
       coalesce(TRY_CAST({attr_expr(A.INPUT_TOKENS)} AS BIGINT), 0)
         + coalesce(TRY_CAST({attr_expr(A.OUTPUT_TOKENS)} AS BIGINT), 0) AS tokens,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id
FROM spans WHERE kind = 'step'
"""

LLM_CALLS_VIEW = f"""
CREATE OR REPLACE VIEW llm_calls AS
SELECT run_id, step,
       {attr(A.AGENT_NAME, "agent")},
       {attr(A.REQUEST_MODEL, "model")},
       {attr(A.INPUT_TOKENS, "input_tokens", "BIGINT")},
       {attr(A.OUTPUT_TOKENS, "output_tokens", "BIGINT")},
       {attr(A.PROMPT, "prompt")},
       {attr(A.COMPLETION, "completion")},
       {attr(A.REQUEST_HASH, "request_hash")},
       {attr(A.CACHED, "cached", "BOOLEAN")},
       {attr(A.NODE_ID, "node_id")},
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id, parent_span_id
FROM spans WHERE kind = 'chat'
"""

TOOL_CALLS_VIEW = f"""
CREATE OR REPLACE VIEW tool_calls AS
SELECT run_id, step,
       {attr(A.TOOL_NAME, "tool")},
       {attr(A.TOOL_INPUT, "input")},
       {attr(A.TOOL_OUTPUT, "output")},
       {attr(A.TOOL_OK, "ok", "BOOLEAN")},
       {attr(A.NODE_ID, "node_id")},
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
    """Statements that create every table and view; safe to run on every open."""
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


def check_version(stored: str | None) -> None:
    """Refuse a database written by a newer schema than this code understands."""
    if stored is not None and int(stored) > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"trace database has schema version {stored}, newer than this branchpoint "
            f"({SCHEMA_VERSION}); upgrade branchpoint or use a new --db file"
        )


VERSION_UPSERT = "INSERT OR REPLACE INTO schema_meta VALUES ('schema_version', ?)"
VERSION_READ = "SELECT value FROM schema_meta WHERE key = 'schema_version'"


def primary_key(table: str) -> tuple[str, ...]:
    """Primary-key columns of a pipeline table."""
    return TABLES[table][1]


def quote(name: str) -> str:
    """Quote an identifier for generated SQL."""
    return _q(name)
