"""What each page of the viewer shows, read from the trace database through the read-only path.

The server and the report read through `snapshot.TraceReader` (a private copy of the database,
each statement vetted by `read_statements`, as `branchpoint sql` vets it). The functions here
take any `Reader`, anything that answers SQL with rows as dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from branchpoint.errors import UnknownRunError, UnknownSweepError
from branchpoint.model import Step
from branchpoint.view.lineage import Link, Segment, StepKey, first_divergence, step_segments

Row = dict[str, Any]


class Reader(Protocol):
    """Anything that runs a read-only SQL query and returns rows as dicts."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[Row]: ...


@dataclass(frozen=True)
class Page:
    """One page of a long list: 1-based `number`, `size` rows per page, `total` rows."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def count(self) -> int:
        return max(1, -(-self.total // self.size))


def page_of(number: int, size: int, total: int) -> Page:
    """A page clamped to the rows that exist."""
    last = max(1, -(-total // size))
    return Page(min(max(1, number), last), size, total)


# --- runs list -------------------------------------------------------------------------------

RUN_FILTERS = ("team", "model", "status", "sweep", "task", "kind")


@dataclass(frozen=True)
class RunFilter:
    """The runs page's filters; empty strings mean "any"."""

    team: str = ""
    model: str = ""
    status: str = ""
    sweep: str = ""
    task: str = ""
    kind: str = ""  # "", "root" or "fork"

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["TRUE"], []
        for column in ("team", "model", "status"):
            value = getattr(self, column)
            if value:
                clauses.append(f"r.{column} = ?")
                params.append(value)
        if self.sweep:
            clauses.append(
                "(r.sweep_id = ? OR r.run_id IN "
                "(SELECT parent_run_id FROM outcomes WHERE sweep_id = ?))"
            )
            params += [self.sweep, self.sweep]
        if self.task:
            clauses.append("(r.task_id ILIKE ? OR r.question ILIKE ?)")
            params += [f"%{self.task}%"] * 2
        if self.kind == "root":
            clauses.append("r.parent_run_id IS NULL")
        elif self.kind == "fork":
            clauses.append("r.parent_run_id IS NOT NULL")
        return " AND ".join(clauses), params


# Finished runs, and runs whose steps are recorded but whose run record is not yet (a run is
# recorded when it ends): those show as "running" (or interrupted, if their process died).
_ALL_RUNS = """
WITH all_runs AS (
    SELECT run_id, team, model, task_id, question, status, sweep_id, parent_run_id, fork_step,
           input_tokens, output_tokens, seconds, n_steps, started_at FROM runs
    UNION ALL BY NAME
    SELECT run_id, 'running' AS status, max(step) + 1 AS n_steps, min(started_at) AS started_at,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM steps WHERE run_id NOT IN (SELECT run_id FROM runs) GROUP BY run_id
)
"""

_RUNS_SQL = (
    _ALL_RUNS
    + """
SELECT r.run_id, r.team, r.model, r.task_id, r.status, r.sweep_id, r.parent_run_id, r.fork_step,
       coalesce(r.input_tokens, 0) + coalesce(r.output_tokens, 0) AS tokens,
       r.seconds, CASE WHEN r.status = 'running' THEN r.n_steps
                       ELSE coalesce(r.fork_step, 0) + r.n_steps END AS steps, r.started_at,
       (SELECT count(*) FROM runs f WHERE f.parent_run_id = r.run_id) AS forks,
       (SELECT count(*) FROM verdicts v WHERE v.run_id = r.run_id) AS verdicts
FROM all_runs r WHERE {where}
ORDER BY r.started_at DESC, r.run_id LIMIT ? OFFSET ?
"""
)

_FACETS_SQL = (
    _ALL_RUNS
    + """
SELECT list(DISTINCT team ORDER BY team) AS team, list(DISTINCT model ORDER BY model) AS model,
       list(DISTINCT status ORDER BY status) AS status,
       (SELECT list(sweep_id ORDER BY created_at) FROM sweeps) AS sweep
FROM all_runs
"""
)


@dataclass(frozen=True)
class RunsView:
    rows: list[Row]
    page: Page
    facets: dict[str, list[str]]


def list_runs(reader: Reader, filters: RunFilter, page: int = 1, size: int = 50) -> RunsView:
    """One page of runs matching the filters, newest first, with the filter choices."""
    where, params = filters.where()
    total = reader.query(f"{_ALL_RUNS} SELECT count(*) AS n FROM all_runs r WHERE {where}", params)
    total = total[0]["n"]
    current = page_of(page, size, total)
    rows = reader.query(_RUNS_SQL.format(where=where), [*params, size, current.offset])
    facet_row = reader.query(_FACETS_SQL)[0]
    facets = {k: [v for v in (facet_row[k] or []) if v is not None] for k in facet_row}
    return RunsView(rows, current, facets)


# --- one run ---------------------------------------------------------------------------------

_RUN_SQL = """
SELECT r.*, json_extract_string(s.attributes, '$."branchpoint.task"') AS task_json,
       json_extract_string(s.attributes, '$."branchpoint.intervention"') AS intervention_json
FROM runs r JOIN spans s ON s.span_id = r.span_id WHERE r.run_id = ?
"""

_CHAIN_SQL = """
WITH RECURSIVE chain(run_id, parent_run_id, fork_step, depth) AS (
    SELECT run_id, parent_run_id, fork_step, 0 FROM runs WHERE run_id = ?
    UNION ALL
    SELECT r.run_id, r.parent_run_id, r.fork_step, c.depth + 1
    FROM runs r JOIN chain c ON r.run_id = c.parent_run_id WHERE c.depth < 64
)
SELECT run_id, fork_step FROM chain ORDER BY depth
"""


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return default


def load_run_row(reader: Reader, run_id: str) -> Row:
    """The run's row with its task, faults and intervention decoded; UnknownRunError if absent."""
    rows = reader.query(_RUN_SQL, [run_id]) or unfinished_run(reader, run_id)
    if not rows:
        raise UnknownRunError(f"unknown run id {run_id!r}: no such run in this trace database")
    row = rows[0]
    row["task"] = _json(row.pop("task_json"), {})
    row["faults"] = _json(row.get("faults"), [])
    row["intervention"] = _json(row.pop("intervention_json"), None)
    row["tokens"] = (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
    row["total_steps"] = (row.get("fork_step") or 0) + (row.get("n_steps") or 0)
    return row


_UNFINISHED_SQL = """
SELECT run_id, 'running' AS status, max(step) + 1 AS n_steps, min(started_at) AS started_at,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       date_diff('millisecond', min(started_at), max(started_at)) / 1000.0 AS seconds
FROM steps WHERE run_id = ? GROUP BY run_id
"""
_RUN_FIELDS = (
    "team", "model", "seed", "task_id", "success", "final_answer", "error", "parent_run_id",
    "fork_step", "sweep_id", "faults",
)  # fmt: skip


def unfinished_run(reader: Reader, run_id: str) -> list[Row]:
    """A run with recorded steps but no run record yet, as a row like the `runs` view's."""
    rows = reader.query(_UNFINISHED_SQL, [run_id])
    return [{**dict.fromkeys(_RUN_FIELDS), "task_json": None, "intervention_json": None, **r}
            for r in rows]  # fmt: skip


def run_segments(reader: Reader, run_id: str) -> list[Segment]:
    """Where each range of the run's conversation is recorded (see `lineage.step_segments`).

    A run not recorded yet (still running) is its own steps only: its lineage is on its record.
    """
    chain = [Link(r["run_id"], r["fork_step"]) for r in reader.query(_CHAIN_SQL, [run_id])]
    return step_segments(chain or [Link(run_id, None)])


def _segment_where(segments: list[Segment], alias: str = "") -> tuple[str, list[Any]]:
    prefix = f"{alias}." if alias else ""
    clauses = [f"({prefix}run_id = ? AND {prefix}step >= ? AND {prefix}step < ?)" for _ in segments]
    params = [v for s in segments for v in (s.run_id, s.start, s.end)]
    return "(" + (" OR ".join(clauses) or "FALSE") + ")", params


@dataclass
class StepsView:
    rows: list[Row]
    page: Page
    llm_calls: dict[int, list[Row]] = field(default_factory=dict)
    tool_calls: dict[int, list[Row]] = field(default_factory=dict)


_STEP_COLUMNS = (
    "run_id, step, agent, kind, content, intervened, input_tokens, output_tokens, seconds, "
    "checkpoint_id"
)


def run_steps(reader: Reader, segments: list[Segment], page: int = 1, size: int = 100) -> StepsView:
    """One page of the conversation in step order, each step with its LLM and tool calls."""
    where, params = _segment_where(segments)
    total = reader.query(f"SELECT count(*) AS n FROM steps WHERE {where}", params)[0]["n"]
    current = page_of(page, size, total)
    rows = reader.query(
        f"SELECT {_STEP_COLUMNS} FROM steps WHERE {where} ORDER BY step, started_at "
        "LIMIT ? OFFSET ?",
        [*params, size, current.offset],
    )
    view = StepsView(rows, current)
    if not rows:
        return view
    bounds = [rows[0]["step"], rows[-1]["step"]]
    for table, target in (("llm_calls", view.llm_calls), ("tool_calls", view.tool_calls)):
        calls = reader.query(
            f"SELECT * FROM {table} WHERE {where} AND step BETWEEN ? AND ? ORDER BY started_at",
            [*params, *bounds],
        )
        for call in calls:
            target.setdefault(call["step"], []).append(call)
    return view


def run_trials(reader: Reader, run_id: str, segments: list[Segment]) -> tuple[list[Row], str]:
    """The run's trials as the segmenter stored them, else the rule-based segmentation."""
    from branchpoint.interventions.segment import segment_by_kinds

    stored = reader.query('SELECT * FROM trials WHERE run_id = ? ORDER BY "index"', [run_id])
    if stored:
        return stored, "stored by the debugger"
    where, params = _segment_where(segments)
    kinds = reader.query(f"SELECT step, agent, kind FROM steps WHERE {where} ORDER BY step", params)
    steps = [
        Step(run_id=run_id, index=r["step"], agent=r["agent"] or "?", kind=r["kind"], content="")
        for r in kinds
        if r["kind"] in ("plan", "instruction", "message", "tool_result", "final")
    ]
    return [t.model_dump() for t in segment_by_kinds(steps)], "rule-based (plan steps)"


# --- fork tree and side by side --------------------------------------------------------------

_TREE_SQL = """
SELECT r.run_id, r.parent_run_id, r.fork_step, r.status, r.success, r.n_steps, r.sweep_id,
       r.intervention_id,
       json_extract_string(s.attributes, '$."branchpoint.intervention"') AS intervention_json
FROM runs r JOIN spans s ON s.span_id = r.span_id
WHERE r.run_id = ? OR r.run_id IN (SELECT run_id FROM forks WHERE root_run_id = ?)
ORDER BY r.started_at, r.run_id
"""


def root_of(reader: Reader, run_id: str) -> str:
    """The original run at the root of a run's fork tree."""
    rows = reader.query("SELECT root_run_id FROM forks WHERE run_id = ?", [run_id])
    return str(rows[0]["root_run_id"]) if rows else run_id


def fork_tree_rows(reader: Reader, run_id: str, limit: int = 500) -> tuple[str, list[Row]]:
    """The root of the run's tree and every run in it (up to `limit`), interventions decoded."""
    root = root_of(reader, run_id)
    rows = reader.query(_TREE_SQL + " LIMIT ?", [root, root, limit])
    for row in rows:
        row["intervention"] = _json(row.pop("intervention_json"), None)
    return root, rows


def _step_keys(reader: Reader, segments: list[Segment], start: int) -> list[StepKey]:
    where, params = _segment_where(segments)
    rows = reader.query(
        f"SELECT step, agent, md5(coalesce(content, '')) AS h FROM steps WHERE {where} "
        "AND step >= ? ORDER BY step",
        [*params, start],
    )
    return [StepKey(r["step"], r["agent"] or "", r["h"]) for r in rows]


@dataclass
class Comparison:
    """A fork beside its parent from the fork step on."""

    fork: Row
    parent: Row
    fork_step: int
    divergence: int | None
    pairs: list[tuple[Row | None, Row | None]]
    page: Page


def compare_fork(reader: Reader, fork_id: str, page: int = 1, size: int = 100) -> Comparison:
    """Original and fork side by side from the fork step, and the first step where they differ."""
    fork = load_run_row(reader, fork_id)
    if fork.get("parent_run_id") is None:
        raise UnknownRunError(f"run {fork_id!r} is not a fork: it has no parent to compare with")
    parent = load_run_row(reader, fork["parent_run_id"])
    k = int(fork.get("fork_step") or 0)
    fork_segments = run_segments(reader, fork_id)
    parent_segments = run_segments(reader, parent["run_id"])
    divergence = first_divergence(
        _step_keys(reader, parent_segments, k), _step_keys(reader, fork_segments, k), k
    )
    current = page_of(page, size, max(parent["total_steps"], fork["total_steps"]) - k)
    lo = k + current.offset
    hi = lo + size
    sides = []
    for segments in (parent_segments, fork_segments):
        where, params = _segment_where(segments)
        rows = reader.query(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE {where} AND step >= ? AND step < ? "
            "ORDER BY step",
            [*params, lo, hi],
        )
        sides.append({r["step"]: r for r in rows})
    indices = sorted(sides[0].keys() | sides[1].keys())
    pairs = [(sides[0].get(i), sides[1].get(i)) for i in indices]
    return Comparison(fork, parent, k, divergence, pairs, current)


# --- debugging -------------------------------------------------------------------------------

_VERDICTS_SQL = """
SELECT v.*, h.method, h.agent, h.step, h.reason, i.kind AS intervention_kind, i.payload
FROM verdicts v
LEFT JOIN hypotheses h ON h.hypothesis_id = v.hypothesis_id
LEFT JOIN interventions i ON i.intervention_id = v.intervention_id
WHERE v.run_id = ? ORDER BY h.method, h.step, v.hypothesis_id, v.intervention_id
"""

_CURVE_SQL = """
SELECT step, count(*) AS n, avg(CASE WHEN success THEN 1.0 ELSE 0.0 END) AS v
FROM outcomes
WHERE parent_run_id = ? AND intervention_kind = 'resample' AND hypothesis_id IS NULL
GROUP BY step ORDER BY step
"""

_OUTCOME_GROUPS_SQL = """
SELECT o.step, o.intervention_kind, o.intervention_id, h.method, count(*) AS n,
       count(*) FILTER (WHERE o.success) AS successes,
       count(*) FILTER (WHERE o.fulfilled) AS fulfilled,
       avg(o.progress_delta) AS mean_progress,
       sum(o.input_tokens + o.output_tokens) AS tokens
FROM outcomes o LEFT JOIN hypotheses h ON h.hypothesis_id = o.hypothesis_id
WHERE o.parent_run_id = ?
GROUP BY ALL ORDER BY o.step, o.intervention_kind, h.method
"""


@dataclass
class DebugView:
    hypotheses: list[Row]
    interventions: list[Row]
    verdicts: list[Row]
    outcome_groups: list[Row]
    curve: list[tuple[int, float, int]]
    change_point: int | None


def debug_view(reader: Reader, run_id: str) -> DebugView:
    """Hypotheses, interventions, grouped outcomes, verdicts and V(k) of one debugged run."""
    hypotheses = reader.query(
        "SELECT * FROM hypotheses WHERE run_id = ? ORDER BY method, step, hypothesis_id", [run_id]
    )
    interventions = reader.query(
        "SELECT * FROM interventions WHERE run_id = ? ORDER BY step, kind, intervention_id",
        [run_id],
    )
    for row in interventions:
        row["payload"] = _json(row.get("payload"), {})
    curve = [(r["step"], float(r["v"]), r["n"]) for r in reader.query(_CURVE_SQL, [run_id])]
    change = [h["step"] for h in hypotheses if h["method"] == "value_curve"]
    return DebugView(
        hypotheses,
        interventions,
        reader.query(_VERDICTS_SQL, [run_id]),
        reader.query(_OUTCOME_GROUPS_SQL, [run_id]),
        curve,
        change[0] if change else None,
    )


# --- sweeps ----------------------------------------------------------------------------------

# A sweep's forks still running: steps recorded, no run record yet. Such a fork has no outcome
# yet either (`outcomes.item_id` names the items of finished forks only) and its step spans
# carry no sweep id, so its item is read from its run id, "<item_id>.<suffix>" (see
# `pipeline.ForkBatch`).
_RUNNING_SQL = """
SELECT count(DISTINCT run_id) AS n FROM steps
WHERE split_part(run_id, '.', 1) IN (SELECT item_id FROM sweep_items WHERE sweep_id = ?)
  AND run_id NOT IN (SELECT run_id FROM runs)
"""

_BY_METHOD_SQL = """
SELECT coalesce(h.method, 'control (resample)') AS label, h.method IS NULL AS control,
       count(*) AS n, count(*) FILTER (WHERE o.success) AS successes
FROM outcomes o LEFT JOIN hypotheses h ON h.hypothesis_id = o.hypothesis_id
WHERE o.sweep_id = ? AND (h.method IS NOT NULL OR o.intervention_kind = 'resample')
GROUP BY ALL ORDER BY control, label
"""

_BY_KIND_SQL = """
SELECT o.intervention_kind AS label, o.intervention_kind = 'resample' AS control,
       count(*) AS n, count(*) FILTER (WHERE o.success) AS successes
FROM outcomes o WHERE o.sweep_id = ?
GROUP BY ALL ORDER BY control, label
"""


def list_sweeps(reader: Reader) -> list[Row]:
    """Every sweep with its progress."""
    from branchpoint.interventions.sweep import sweep_rows

    return sweep_rows(reader)


@dataclass
class SweepView:
    sweep: Row
    spec: dict[str, Any]
    running: int
    by_method: list[Row]
    by_kind: list[Row]
    runs: list[Row]


def sweep_view(reader: Reader, sweep_id: str) -> SweepView:
    """A sweep's progress and its flips by method and by intervention kind, with controls."""
    from branchpoint.interventions.sweep import sweep_rows

    rows = reader.query("SELECT * FROM sweeps WHERE sweep_id = ?", [sweep_id])
    if not rows:
        raise UnknownSweepError(f"unknown sweep id {sweep_id!r}: no such sweep in this database")
    progress = sweep_rows(reader, sweep_id)[0]
    running = reader.query(_RUNNING_SQL, [sweep_id])[0]["n"]
    runs = reader.query(
        "SELECT r.run_id, r.task_id, r.status, count(o.fork_run_id) AS forks, "
        "count(o.fork_run_id) FILTER (WHERE o.success) AS flips "
        "FROM outcomes o JOIN runs r ON r.run_id = o.parent_run_id WHERE o.sweep_id = ? "
        "GROUP BY ALL ORDER BY r.run_id",
        [sweep_id],
    )
    return SweepView(
        progress,
        _json(rows[0]["spec"], {}),
        running,
        reader.query(_BY_METHOD_SQL, [sweep_id]),
        reader.query(_BY_KIND_SQL, [sweep_id]),
        runs,
    )
