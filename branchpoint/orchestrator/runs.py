"""Reading runs and steps back from the trace database as model objects (lineage resolved)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from branchpoint.errors import NotReplayableError, UnknownRunError
from branchpoint.model import AnnotatedFailure, Fault, Run, Step, Task, TeamSource
from branchpoint.telemetry.store import TraceStore

_RUN_SQL = """
SELECT r.*, json_extract_string(s.attributes, '$."branchpoint.task"') AS task_json,
       json_extract_string(s.attributes, '$."branchpoint.team_source"') AS team_source_json
FROM runs r JOIN spans s ON s.span_id = r.span_id
WHERE r.run_id = ?
"""
_STEPS_SQL = "SELECT * FROM steps WHERE run_id = ? ORDER BY step"


def _json_list(value: Any) -> list[Any]:
    items = json.loads(value) if isinstance(value, str) else value
    return items if isinstance(items, list) else []


def _faults(value: Any) -> tuple[Fault, ...]:
    """The injected faults of a run. Databases written before imports had their own attribute
    hold an imported log's annotation (a Hypothesis dump) here: such entries are not faults."""
    faults = []
    for item in _json_list(value):
        try:
            faults.append(Fault.model_validate(item))
        except ValidationError:
            continue
    return tuple(faults)


def _annotations(row: dict[str, Any]) -> tuple[AnnotatedFailure, ...]:
    """Annotated failures of an imported run; an older database kept them in `faults`."""
    found = _json_list(row.get("annotations"))
    if not found:
        found = [
            {k: f[k] for k in ("agent", "step", "reason") if k in f}
            for f in _json_list(row.get("faults"))
            if isinstance(f, dict) and f.get("method") == "ground_truth"
        ]
    return tuple(AnnotatedFailure.model_validate(a) for a in found)


def run_from_row(row: dict[str, Any]) -> Run:
    """A Run from a row of the `runs` view joined with its task JSON."""
    annotations = _annotations(row)
    return Run(
        run_id=row["run_id"],
        task=Task.model_validate_json(row["task_json"]),
        team=row["team"],
        model=row["model"],
        seed=int(row.get("seed") or 0),
        status=row["status"] or "errored",
        final_answer=row.get("final_answer") or None,
        success=bool(row.get("success")),
        error=row.get("error") or None,
        parent_run_id=row.get("parent_run_id") or None,
        fork_step=row.get("fork_step"),
        intervention_id=row.get("intervention_id") or None,
        thread_id=row.get("thread_id") or None,
        sweep_id=row.get("sweep_id") or None,
        faults=_faults(row.get("faults")),
        source=row.get("source") or ("imported" if annotations else None),
        annotations=annotations,
        input_tokens=int(row.get("input_tokens") or 0),
        output_tokens=int(row.get("output_tokens") or 0),
        seconds=float(row.get("seconds") or 0.0),
        n_steps=int(row.get("n_steps") or 0),
        team_source=(
            TeamSource.model_validate_json(row["team_source_json"])
            if row.get("team_source_json")
            else None
        ),
    )


def require_replayable(run: Run) -> Run:
    """The run itself, or NotReplayableError for an imported log (it has no checkpoints)."""
    if run.source is not None:
        raise NotReplayableError(
            f"run {run.run_id} is an imported log ({run.source}) without checkpoints: it cannot "
            "be forked, replayed or debugged by intervention (attribute it with "
            "`branchpoint import FORMAT PATH --methods ...`)"
        )
    return run


def step_from_row(row: dict[str, Any]) -> Step:
    """A Step from a row of the `steps` view."""
    return Step(
        run_id=row["run_id"],
        index=int(row["step"]),
        agent=row["agent"],
        kind=row["kind"],
        content=row.get("content") or "",
        checkpoint_id=row.get("checkpoint_id") or None,
        input_tokens=int(row.get("input_tokens") or 0),
        output_tokens=int(row.get("output_tokens") or 0),
        seconds=float(row.get("seconds") or 0.0),
    )


def load_run(store: TraceStore, run_id: str) -> Run:
    """The run with this id, or UnknownRunError."""
    rows = store.query(_RUN_SQL, [run_id])
    if not rows:
        raise UnknownRunError(
            f'unknown run id {run_id!r}; list runs with: branchpoint sql "SELECT run_id, status FROM runs"'
        )
    return run_from_row(rows[0])


def load_steps(store: TraceStore, run: Run) -> list[Step]:
    """Every step of a run in order, including the prefix a fork shares with its parent."""
    own = [step_from_row(r) for r in store.query(_STEPS_SQL, [run.run_id])]
    if run.parent_run_id is None or run.fork_step is None:
        return own
    prefix = load_steps(store, load_run(store, run.parent_run_id))[: run.fork_step]
    return prefix + [s for s in own if s.index >= run.fork_step]
