"""A small trace database written row by row, with the shapes the orchestrator and pipeline store.

For fast tests of the viewer's queries and pages (no Ray, no team): a failed root run, a fork
that fixes it, a resample control, a debugged run's tables, and a sweep.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from branchpoint.model import Hypothesis
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.store import DuckDBTraceStore, connect

T0 = datetime(2026, 1, 1, 12, 0, 0)
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
# A hypothesis id is computed from its content (model.Hypothesis.hypothesis_id).
HYP_VC = Hypothesis(
    run_id="run-root", agent="Solver", step=2, reason="V drops after step 2 " + XSS,
    method="value_curve", confidence=0.8, trial=0,
).hypothesis_id  # fmt: skip
TASK = {"task_id": "t-wage", "question": "Leo earns $15 an hour...", "answer": "400"}


def span(span_id: str, kind: str, run_id: str, step: int | None, attrs: dict[str, Any],
         start: datetime) -> dict[str, Any]:  # fmt: skip
    return {
        "span_id": span_id, "trace_id": f"trace-{run_id}", "parent_span_id": None,
        "name": kind, "kind": kind, "otel_kind": "INTERNAL", "run_id": run_id, "step": step,
        "start_time": start, "end_time": start + timedelta(seconds=1), "duration_ms": 1000.0,
        "status_code": "OK", "status_message": None, "attributes": json.dumps(attrs),
        "events": "[]", "links": "[]", "resource": "{}", "scope": "test",
    }  # fmt: skip


def run_span(run_id: str, status: str, start: datetime, **extra: Any) -> dict[str, Any]:
    attrs = {
        A.KIND: "run", A.RUN_ID: run_id, A.TEAM: "math", A.TASK_ID: TASK["task_id"],
        A.TASK: json.dumps(TASK), A.REQUEST_MODEL: "sim", A.SEED: 1, A.STATUS: status,
        A.SUCCESS: status == "succeeded", A.FINAL_ANSWER: "400" if status == "succeeded" else "399",
        A.THREAD_ID: "thread-1", A.INPUT_TOKENS: 30, A.OUTPUT_TOKENS: 12,
    }  # fmt: skip
    attrs.update(extra)
    return span(f"run-{run_id}", "run", run_id, None, attrs, start)


def step_span(run_id: str, k: int, agent: str, content: str, start: datetime,
              intervened: bool = False) -> dict[str, Any]:  # fmt: skip
    attrs = {
        A.KIND: "step", A.RUN_ID: run_id, A.STEP: k, A.AGENT_NAME: agent,
        A.STEP_KIND: "plan" if k == 0 else ("final" if agent == "Verifier" else "message"),
        A.CONTENT: content, A.CHECKPOINT_ID: f"ckpt-{run_id}-{k}", A.INTERVENED: intervened,
        A.INPUT_TOKENS: 10, A.OUTPUT_TOKENS: 4,
    }  # fmt: skip
    return span(f"step-{run_id}-{k}", "step", run_id, k, attrs, start + timedelta(seconds=k))


def chat_span(run_id: str, k: int, prompt: str, completion: str, start: datetime) -> dict[str, Any]:
    attrs = {
        A.KIND: "chat", A.RUN_ID: run_id, A.STEP: k, A.AGENT_NAME: "Solver",
        A.REQUEST_MODEL: "sim", A.INPUT_TOKENS: 10, A.OUTPUT_TOKENS: 4, A.PROMPT: prompt,
        A.COMPLETION: completion,
    }  # fmt: skip
    return span(f"chat-{run_id}-{k}", "chat", run_id, k, attrs, start + timedelta(seconds=k))


def tool_span(run_id: str, k: int, start: datetime) -> dict[str, Any]:
    attrs = {
        A.KIND: "tool", A.RUN_ID: run_id, A.STEP: k, A.TOOL_NAME: "python",
        A.TOOL_INPUT: "print(15*8)", A.TOOL_OUTPUT: "120", A.TOOL_OK: True,
    }  # fmt: skip
    return span(f"tool-{run_id}-{k}", "tool", run_id, k, attrs, start + timedelta(seconds=k))


ROOT_STEPS = [
    ("Planner", "Plan: compute the daily wage, then the weekly, then subtract."),
    ("Solver", "15*8 = 120"),
    ("Solver", "120*5 = 599  " + XSS),
    ("Solver", "599-200 = 399"),
    ("Verifier", "FINAL ANSWER: 399"),
]
FIXED_STEPS = [
    ("Solver", "120*5 = 600"),
    ("Solver", "600-200 = 400"),
    ("Verifier", "FINAL ANSWER: 400"),
]
FAULTS = [{"agent": "Solver", "step": 2, "kind": "wrong_operand", "recurrence": 1.0}]
FIX = {"kind": "replace_message", "step": 2, "content": "120*5 = 600"}
RESAMPLE = {"kind": "resample", "step": 2}


def build(path: Path, extra_steps: int = 0) -> dict[str, str]:
    """Write the fixture database; returns the ids a test refers to."""
    ids = {"root": "run-root", "fix": "run-fix", "control": "run-ctl", "sweep": "sweep-1",
           "live": "run-live"}  # fmt: skip
    spans = [run_span("run-root", "failed", T0, **{A.FAULTS: json.dumps(FAULTS)})]
    steps = ROOT_STEPS + [("Solver", f"extra step {i}") for i in range(extra_steps)]
    for k, (agent, content) in enumerate(steps):
        spans.append(step_span("run-root", k, agent, content, T0))
        spans.append(chat_span("run-root", k, f"prompt {k} {XSS}", content, T0))
    spans.append(tool_span("run-root", 1, T0))
    later = T0 + timedelta(minutes=5)
    lineage = {A.PARENT_RUN_ID: "run-root", A.FORK_STEP: 2, A.SWEEP_ID: "sweep-1"}
    spans.append(run_span("run-fix", "succeeded", later, **lineage, **{
        A.INTERVENTION_ID: "iv-fix", "branchpoint.intervention": json.dumps(FIX)}))  # fmt: skip
    for i, (agent, content) in enumerate(FIXED_STEPS):
        spans.append(step_span("run-fix", 2 + i, agent, content, later, intervened=i == 0))
    spans.append(run_span("run-ctl", "failed", later + timedelta(seconds=1), **lineage, **{
        A.INTERVENTION_ID: "iv-rs", "branchpoint.intervention": json.dumps(RESAMPLE)}))  # fmt: skip
    for k, (agent, content) in enumerate(ROOT_STEPS[2:], start=2):
        spans.append(step_span("run-ctl", k, agent, content, later))
    live = T0 + timedelta(minutes=10)  # steps recorded, the run not finished (no run span yet)
    spans += [step_span("run-live", k, "Solver", f"live step {k}", live) for k in range(2)]
    store = DuckDBTraceStore(path)
    try:
        store.write_spans(spans)
        _pipeline_rows(store)
    finally:
        store.close()
    return ids


def _pipeline_rows(store: DuckDBTraceStore) -> None:
    store.write_rows("trials", [{"run_id": "run-root", "index": 0, "start": 0, "end": 5}])
    store.write_rows("hypotheses", [
        {"hypothesis_id": HYP_VC, "run_id": "run-root", "agent": "Solver", "step": 2,
         "reason": "V drops after step 2 " + XSS, "method": "value_curve", "confidence": 0.8,
         "trial": 0},
    ])  # fmt: skip
    store.write_rows("interventions", [
        {"intervention_id": "iv-fix", "run_id": "run-root", "hypothesis_id": HYP_VC,
         "kind": "replace_message", "step": 2, "payload": json.dumps(FIX), "sweep_id": "sweep-1"},
    ])  # fmt: skip
    outcomes = [
        {"fork_run_id": "run-fix", "intervention_id": "iv-fix",
         "intervention_kind": "replace_message", "step": 2, "success": True,
         "hypothesis_id": HYP_VC},
        {"fork_run_id": "run-ctl", "intervention_id": "iv-rs", "intervention_kind": "resample",
         "step": 2, "success": False, "hypothesis_id": None},
    ] + [
        {"fork_run_id": f"curve-{k}", "intervention_id": f"iv-rs{k}",
         "intervention_kind": "resample", "step": k, "success": k < 2, "hypothesis_id": None}
        for k in (0, 1, 3, 4)
    ]  # fmt: skip
    store.write_rows("outcomes", [
        {"parent_run_id": "run-root", "repeat": 0, "milestones_achieved": 1,
         "milestones_total": 3, "progress_delta": 0.33, "fulfilled": True, "input_tokens": 5,
         "output_tokens": 5, "seconds": 0.1, "sweep_id": "sweep-1", **o}
        for o in outcomes
    ])  # fmt: skip
    store.write_rows("verdicts", [
        {"hypothesis_id": HYP_VC, "run_id": "run-root", "intervention_id": "iv-fix",
         "label": "validated", "n": 1, "successes": 1, "fulfilled": 1, "mean_progress": 0.33,
         "wilson_low": 0.2065, "wilson_high": 1.0, "control_n": 1, "control_successes": 0,
         "control_rate": 0.0},
    ])  # fmt: skip
    store.write_rows("sweeps", [
        {"sweep_id": "sweep-1", "created_at": T0, "status": "finished",
         "spec": json.dumps({"methods": ["value_curve"], "repeats": 1})},
    ])  # fmt: skip
    store.write_rows("sweep_items", [
        {"item_id": f"item-{i}", "sweep_id": "sweep-1", "status": "planned",
         "payload": {"run_id": "run-root", "intervention": {"kind": "resample", "step": 1},
                     "repeat": i},
         "fork_run_id": None, "updated_at": T0}
        for i in range(8)
    ])  # fmt: skip


class ConnectionReader:
    """A `queries.Reader` on one read-only connection to the file itself, for tests that only
    render: no snapshot copy as `TraceReader` takes (the server never holds the file)."""

    def __init__(self, path: Path) -> None:
        self.db_path = path
        self._con = connect(path, read_only=True)  # the configuration readonly_query uses

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._con.execute(sql, params or [])
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._con.close()
