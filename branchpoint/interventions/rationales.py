"""NExT-style rationales: validated interventions exported as execution-aware training records.

A hypothesis that survived its intervention test is a worked example of debugging: the task, the
failed run up to the step that went wrong, who/when/why, the minimal edit, and what the team did
once the edit was made (the successful fork's steps from that step on, and for code tasks the
programs it ran with their inputs and outputs). `export_rationales` writes one JSON line per
validated (or partially validated) hypothesis and intervention, in the versioned `Rationale`
schema below; `Rationale.model_json_schema()` is the documented contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from branchpoint.errors import BranchpointError, first_line
from branchpoint.model import INTERVENTION_ADAPTER, Frozen, Intervention, Step, Task
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.telemetry.readonly import read_statements

RATIONALE_SCHEMA_VERSION = 1
EXPORTED_LABELS = ("validated", "partially validated")

_TESTED_SQL = """
SELECT v.hypothesis_id, v.intervention_id, v.run_id, v.label, v.n, v.successes, v.fulfilled,
       v.mean_progress, v.control_n, v.control_rate,
       h.agent, h.step, h.reason, h.method, h.confidence, i.payload
FROM verdicts v
JOIN hypotheses h USING (hypothesis_id)
JOIN interventions i ON i.intervention_id = v.intervention_id
WHERE v.label IN ('validated', 'partially validated') {where}
ORDER BY v.run_id, h.step, v.hypothesis_id, v.intervention_id
"""
# The fork that shows the fix: a success first, then the most milestone progress.
_BEST_FORK_SQL = """
SELECT fork_run_id, success, progress_delta, milestones_achieved, milestones_total
FROM outcomes WHERE hypothesis_id = ? AND intervention_id = ? AND fulfilled
ORDER BY success DESC, progress_delta DESC, fork_run_id LIMIT 1
"""
_TOOLS_SQL = "SELECT step, tool, input, output, ok FROM tool_calls WHERE run_id = ? ORDER BY step, started_at"


class RationaleStep(Frozen):
    """One step as a debugger sees it: `[Step index] agent: content`."""

    index: int
    agent: str
    kind: str
    content: str


class ExecutionRecord(Frozen):
    """One tool execution (for code tasks: a program run on an example) in the failed run or
    in the fork."""

    run: Literal["failed", "fork"]
    step: int
    tool: str
    input: str
    output: str
    ok: bool


class RationaleHypothesis(Frozen):
    """Who failed, when, and why, and which attribution method said so."""

    agent: str
    step: int
    reason: str
    method: str
    confidence: float


class Rationale(Frozen):
    """One validated (or partially validated) intervention, version `RATIONALE_SCHEMA_VERSION`."""

    schema_version: Literal[1] = 1
    run_id: str
    fork_run_id: str
    task: Task
    failed_steps: list[RationaleStep] = Field(
        description="the failed run's steps before the fork step"
    )
    hypothesis: RationaleHypothesis
    intervention: Intervention
    fork_steps: list[RationaleStep] = Field(description="the fork's steps from the fork step on")
    fork_succeeded: bool
    verdict: Literal["validated", "partially validated"]
    forks: int
    fork_successes: int
    fulfilled: int
    milestone_progress: float = Field(description="mean milestone progress of the forks")
    milestones_achieved: int
    milestones_total: int
    control_forks: int
    control_rate: float = Field(description="success rate of resample forks at the same step")
    execution_trace: list[ExecutionRecord] = Field(
        default_factory=list, description="tool calls with inputs and outputs (code tasks)"
    )


def _steps(steps: list[Step]) -> list[RationaleStep]:
    return [
        RationaleStep(index=s.index, agent=s.agent, kind=s.kind, content=s.content) for s in steps
    ]


def _trace(
    store: Any, run_id: str, label: Literal["failed", "fork"], keep: Any
) -> list[ExecutionRecord]:
    return [
        ExecutionRecord(
            run=label,
            step=r["step"],
            tool=r["tool"] or "",
            input=r["input"] or "",
            output=r["output"] or "",
            ok=bool(r["ok"]),
        )
        for r in store.query(_TOOLS_SQL, [run_id])
        if keep(r["step"])
    ]


def rationale_for(store: Any, row: dict[str, Any]) -> Rationale | None:
    """The rationale of one tested hypothesis (a `_TESTED_SQL` row); None without a usable fork."""
    forks = store.query(_BEST_FORK_SQL, [row["hypothesis_id"], row["intervention_id"]])
    if not forks:
        return None
    best = forks[0]
    payload = row["payload"] if isinstance(row["payload"], str) else json.dumps(row["payload"])
    intervention = INTERVENTION_ADAPTER.validate_json(payload)
    k = intervention.step
    run = load_run(store, row["run_id"])
    fork = load_run(store, best["fork_run_id"])
    failed = load_steps(store, run)
    forked = load_steps(store, fork)
    return Rationale(
        run_id=run.run_id,
        fork_run_id=fork.run_id,
        task=run.task,
        failed_steps=_steps([s for s in failed if s.index < k]),
        hypothesis=RationaleHypothesis(
            agent=row["agent"],
            step=row["step"],
            reason=row["reason"] or "",
            method=row["method"],
            confidence=float(row["confidence"] or 0.0),
        ),
        intervention=intervention,
        fork_steps=_steps([s for s in forked if s.index >= k]),
        fork_succeeded=bool(best["success"]),
        verdict=row["label"],
        forks=row["n"],
        fork_successes=row["successes"],
        fulfilled=row["fulfilled"],
        milestone_progress=float(row["mean_progress"] or 0.0),
        milestones_achieved=int(best["milestones_achieved"] or 0),
        milestones_total=int(best["milestones_total"] or 0),
        control_forks=row["control_n"],
        control_rate=row["control_rate"],
        execution_trace=_trace(store, run.run_id, "failed", lambda step: True)
        + _trace(store, fork.run_id, "fork", lambda step: step >= k),
    )


def rationales(store: Any, where: str | None = None) -> Iterator[Rationale]:
    """Every exportable rationale, optionally only for runs matching `where` (SQL over `runs`)."""
    clause = ""
    if where:
        read_statements(f"SELECT run_id FROM runs WHERE {where}")
        clause = f"AND v.run_id IN (SELECT run_id FROM runs WHERE {where})"
    try:
        rows = store.query(_TESTED_SQL.format(where=clause))
    except BranchpointError:
        raise  # the database itself (missing, damaged, busy): not the filter's fault
    except Exception as exc:  # noqa: BLE001 - DuckDB's own message names the bad column
        raise BranchpointError(f"bad --where filter: {first_line(exc)}") from None
    for row in rows:
        found = rationale_for(store, row)
        if found is not None:
            yield found


def export_rationales(store: Any, out: Path | str, where: str | None = None) -> int:
    """Write the rationales as JSON lines to `out` (written whole, or not at all); the count."""
    out = Path(out)
    lines = [r.model_dump_json() + "\n" for r in rationales(store, where)]
    tmp = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(lines), encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise BranchpointError(
            f"cannot write {out} ({exc.strerror}); choose a writable path"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write or move; gone after a move
    return len(lines)
