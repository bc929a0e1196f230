"""The trace database DDL of schema version 1, frozen: the fixture of the migration tests.

Copied verbatim from `telemetry/schema.ddl()` as released with SCHEMA_VERSION = 1; never edit it.
"""

V1_DDL = [
    """CREATE TABLE IF NOT EXISTS schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS spans (span_id VARCHAR PRIMARY KEY, trace_id VARCHAR NOT NULL, parent_span_id VARCHAR, name VARCHAR, kind VARCHAR, otel_kind VARCHAR, run_id VARCHAR, step INTEGER, start_time TIMESTAMP, end_time TIMESTAMP, duration_ms DOUBLE, status_code VARCHAR, status_message VARCHAR, attributes JSON, events JSON, links JSON, resource JSON, scope VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS trials ("run_id" VARCHAR, "index" INTEGER, "start" INTEGER, "end" INTEGER, PRIMARY KEY ("run_id", "index"))""",
    """CREATE TABLE IF NOT EXISTS hypotheses ("hypothesis_id" VARCHAR, "run_id" VARCHAR, "agent" VARCHAR, "step" INTEGER, "reason" VARCHAR, "method" VARCHAR, "confidence" DOUBLE, "trial" INTEGER, PRIMARY KEY ("hypothesis_id"))""",
    """CREATE TABLE IF NOT EXISTS interventions ("intervention_id" VARCHAR, "run_id" VARCHAR, "hypothesis_id" VARCHAR, "kind" VARCHAR, "step" INTEGER, "payload" JSON, "sweep_id" VARCHAR, PRIMARY KEY ("intervention_id"))""",
    """CREATE TABLE IF NOT EXISTS outcomes ("fork_run_id" VARCHAR, "parent_run_id" VARCHAR, "intervention_id" VARCHAR, "intervention_kind" VARCHAR, "step" INTEGER, "repeat" INTEGER, "success" BOOLEAN, "milestones_achieved" INTEGER, "milestones_total" INTEGER, "progress_delta" DOUBLE, "fulfilled" BOOLEAN, "input_tokens" BIGINT, "output_tokens" BIGINT, "seconds" DOUBLE, "hypothesis_id" VARCHAR, "sweep_id" VARCHAR, PRIMARY KEY ("fork_run_id"))""",
    """CREATE TABLE IF NOT EXISTS verdicts ("hypothesis_id" VARCHAR, "run_id" VARCHAR, "intervention_id" VARCHAR, "label" VARCHAR, "n" INTEGER, "successes" INTEGER, "fulfilled" INTEGER, "mean_progress" DOUBLE, "wilson_low" DOUBLE, "wilson_high" DOUBLE, "control_n" INTEGER, "control_successes" INTEGER, "control_rate" DOUBLE, PRIMARY KEY ("hypothesis_id", "intervention_id"))""",
    """CREATE TABLE IF NOT EXISTS sweeps ("sweep_id" VARCHAR, "created_at" TIMESTAMP, "spec" JSON, "status" VARCHAR, PRIMARY KEY ("sweep_id"))""",
    """CREATE TABLE IF NOT EXISTS sweep_items ("item_id" VARCHAR, "sweep_id" VARCHAR, "payload" JSON, "status" VARCHAR, "fork_run_id" VARCHAR, "updated_at" TIMESTAMP, PRIMARY KEY ("item_id"))""",
    """CREATE TABLE IF NOT EXISTS llm_records ("request_hash" VARCHAR, "model" VARCHAR, "request" JSON, "response" JSON, "created_at" TIMESTAMP, PRIMARY KEY ("request_hash"))""",
    """CREATE OR REPLACE VIEW runs AS
SELECT s.run_id,
       json_extract_string(attributes, '$."branchpoint.team"') AS team,
       json_extract_string(attributes, '$."branchpoint.task_id"') AS task_id,
       json_extract_string(json_extract_string(attributes, '$."branchpoint.task"'), '$.question') AS question,
       json_extract_string(json_extract_string(attributes, '$."branchpoint.task"'), '$.answer') AS ground_truth,
       json_extract_string(attributes, '$."gen_ai.request.model"') AS model,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.seed"') AS BIGINT) AS seed,
       json_extract_string(attributes, '$."branchpoint.status"') AS status,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.success"') AS BOOLEAN) AS success,
       json_extract_string(attributes, '$."branchpoint.final_answer"') AS final_answer,
       json_extract_string(attributes, '$."branchpoint.error"') AS error,
       json_extract_string(attributes, '$."branchpoint.parent_run_id"') AS parent_run_id,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.fork_step"') AS INTEGER) AS fork_step,
       json_extract_string(attributes, '$."branchpoint.intervention_id"') AS intervention_id,
       json_extract_string(attributes, '$."branchpoint.thread_id"') AS thread_id,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.faults"') AS JSON) AS faults,
       json_extract_string(attributes, '$."branchpoint.sweep_id"') AS sweep_id,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT) AS input_tokens,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT) AS output_tokens,
       s.duration_ms / 1000.0 AS seconds,
       s.start_time AS started_at,
       (SELECT count(*) FROM spans t WHERE t.kind = 'step' AND t.run_id = s.run_id) AS n_steps,
       s.trace_id, s.span_id
FROM spans s WHERE s.kind = 'run'""",
    """CREATE OR REPLACE VIEW steps AS
SELECT run_id, step,
       json_extract_string(attributes, '$."gen_ai.agent.name"') AS agent,
       json_extract_string(attributes, '$."branchpoint.step_kind"') AS kind,
       json_extract_string(attributes, '$."branchpoint.content"') AS content,
       json_extract_string(attributes, '$."langgraph.checkpoint_id"') AS checkpoint_id,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.intervened"') AS BOOLEAN) AS intervened,
       json_extract_string(attributes, '$."branchpoint.node_id"') AS node_id,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT) AS input_tokens,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT) AS output_tokens,
       coalesce(TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT), 0)
         + coalesce(TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT), 0) AS tokens,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id
FROM spans WHERE kind = 'step'""",
    """CREATE OR REPLACE VIEW llm_calls AS
SELECT run_id, step,
       json_extract_string(attributes, '$."gen_ai.agent.name"') AS agent,
       json_extract_string(attributes, '$."gen_ai.request.model"') AS model,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.input_tokens"') AS BIGINT) AS input_tokens,
       TRY_CAST(json_extract_string(attributes, '$."gen_ai.usage.output_tokens"') AS BIGINT) AS output_tokens,
       json_extract_string(attributes, '$."gen_ai.prompt"') AS prompt,
       json_extract_string(attributes, '$."gen_ai.completion"') AS completion,
       json_extract_string(attributes, '$."branchpoint.request_hash"') AS request_hash,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.cached"') AS BOOLEAN) AS cached,
       json_extract_string(attributes, '$."branchpoint.node_id"') AS node_id,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id, parent_span_id
FROM spans WHERE kind = 'chat'""",
    """CREATE OR REPLACE VIEW tool_calls AS
SELECT run_id, step,
       json_extract_string(attributes, '$."gen_ai.tool.name"') AS tool,
       json_extract_string(attributes, '$."branchpoint.tool.input"') AS input,
       json_extract_string(attributes, '$."branchpoint.tool.output"') AS output,
       TRY_CAST(json_extract_string(attributes, '$."branchpoint.tool.ok"') AS BOOLEAN) AS ok,
       json_extract_string(attributes, '$."branchpoint.node_id"') AS node_id,
       duration_ms / 1000.0 AS seconds,
       start_time AS started_at,
       trace_id, span_id, parent_span_id
FROM spans WHERE kind = 'tool'""",
    """CREATE OR REPLACE VIEW forks AS
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
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY depth DESC) = 1""",
]
