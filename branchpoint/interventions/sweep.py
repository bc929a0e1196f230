"""Intervention sweeps: the DoVer pipeline over many failed runs, resumable and idempotent.

A sweep is a row in `sweeps` (its spec) plus one `sweep_items` row per planned fork replay. The
spec is enough to plan the same items again, and an item whose outcome is stored is never run
twice, so `--resume` after a killed driver finishes exactly the missing forks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from branchpoint.errors import BranchpointError, NotReplayableError, UnknownSweepError, first_line
from branchpoint.ids import Clock, IdSource, RandomIds, SystemClock
from branchpoint.model import SweepSpec
from branchpoint.telemetry.readonly import read_statements

if TYPE_CHECKING:  # `sweep status` and `sweep list` only read: they must not load Ray or LangGraph
    from branchpoint.interventions.judge import Judge
    from branchpoint.interventions.pipeline import ForkEvents, RunDebug
    from branchpoint.orchestrator.session import Session
    from branchpoint.telemetry.store import TraceStore


class Queryable(Protocol):
    """Anything that answers SQL with rows as dicts (a `TraceStore`, a read-only reader)."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL and return the rows as dicts."""
        ...


def select_runs(store: Queryable, spec: SweepSpec) -> list[str]:
    """Root runs chosen by the spec's ids or its SQL filter over the `runs` view."""
    if spec.run_ids:
        return list(spec.run_ids)
    where = spec.where or "status = 'failed'"
    sql = f"SELECT run_id FROM runs WHERE parent_run_id IS NULL AND ({where}) ORDER BY started_at, run_id"
    read_statements(sql)
    try:
        return [r["run_id"] for r in store.query(sql)]
    except Exception as exc:  # noqa: BLE001 - DuckDB's own message (through Ray) names the bad column
        raise BranchpointError(f"bad --where filter: {first_line(exc)}") from None


def create_sweep(
    store: TraceStore, spec: SweepSpec, ids: IdSource | None = None, clock: Clock | None = None
) -> str:
    """Record a new sweep and return its id."""
    sweep_id = (ids or RandomIds()).new_id("sweep", 10)
    store.write_rows(
        "sweeps",
        [
            {
                "sweep_id": sweep_id,
                "created_at": (clock or SystemClock()).now(),
                "spec": spec,
                "status": "running",
            }
        ],
    )
    return sweep_id


def load_spec(store: Queryable, sweep_id: str) -> SweepSpec:
    """The spec of an existing sweep."""
    rows = store.query("SELECT spec FROM sweeps WHERE sweep_id = ?", [sweep_id])
    if not rows:
        raise UnknownSweepError(f"unknown sweep id {sweep_id!r}; see `branchpoint sweep list`")
    data = json.loads(rows[0]["spec"]) if isinstance(rows[0]["spec"], str) else rows[0]["spec"]
    return SweepSpec.model_validate(data)


def execute_sweep(
    session: Session,
    sweep_id: str,
    spec: SweepSpec,
    judge: Judge | None,
    concurrency: int,
    on_run: Callable[[RunDebug], None] | None = None,
    on_fork: ForkEvents | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[RunDebug]:
    """Run (or finish) a sweep: the pipeline over each selected run, skipping stored forks.

    A selected run that cannot be replayed (an imported log) is skipped: `on_skip(run_id,
    reason)` is told, and the other runs are debugged.
    """
    from branchpoint.interventions.pipeline import DebugConfig, debug_run

    config = DebugConfig(
        methods=spec.methods,
        repeats=spec.repeats,
        curve_repeats=spec.curve_repeats,
        concurrency=concurrency,
        judge=judge,
        sweep_id=sweep_id,
        upgrade_model=spec.upgrade_model,
    )
    reports = []
    for run_id in select_runs(session.store, spec):
        try:
            report = debug_run(session, run_id, config, on_fork)
        except NotReplayableError as exc:
            if on_skip is not None:
                on_skip(run_id, str(exc))
            continue
        reports.append(report)
        if on_run is not None:
            on_run(report)
    mark_finished(session.store, sweep_id)
    return reports


def mark_finished(store: TraceStore, sweep_id: str) -> None:
    """Set a sweep's status to finished, keeping its other columns (an upsert replaces the row)."""
    row = store.query("SELECT * FROM sweeps WHERE sweep_id = ?", [sweep_id])[0]
    store.write_rows("sweeps", [{**row, "status": "finished"}])


SWEEP_STATUS_SQL = """
SELECT s.sweep_id, s.status, s.created_at,
       count(DISTINCT i.item_id) AS planned,
       count(DISTINCT o.item_id) AS done,
       (SELECT count(*) FROM outcomes o WHERE o.sweep_id = s.sweep_id AND o.success) AS succeeded,
       (SELECT coalesce(sum(o.input_tokens + o.output_tokens), 0) FROM outcomes o
         WHERE o.sweep_id = s.sweep_id) AS tokens
FROM sweeps s LEFT JOIN sweep_items i ON i.sweep_id = s.sweep_id
-- an item is done when its outcome is stored (the item row may still say planned if the
-- driver died between the two writes)
LEFT JOIN (SELECT item_id FROM outcomes) o ON o.item_id = i.item_id
{where}
GROUP BY s.sweep_id, s.status, s.created_at ORDER BY s.created_at
"""


def sweep_rows(store: Queryable, sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Progress of one sweep or of all sweeps."""
    where = "WHERE s.sweep_id = ?" if sweep_id else ""
    rows: list[dict[str, Any]] = store.query(
        SWEEP_STATUS_SQL.format(where=where), [sweep_id] if sweep_id else None
    )
    if sweep_id and not rows:
        raise UnknownSweepError(f"unknown sweep id {sweep_id!r}; see `branchpoint sweep list`")
    return rows
