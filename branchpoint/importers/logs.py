"""Imported failure logs as runs in the trace database: one run span, one step span per message.

Span ids are derived from the run id, so importing the same log again writes nothing new (the
store skips span ids it already holds): imports are idempotent. Imported runs carry their source
and annotated failures; they have no checkpoints, so they can be queried, segmented and
attributed, never forked or replayed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from branchpoint.model import AnnotatedFailure, Frozen, Hypothesis, Run, Step, ToolCall
from branchpoint.telemetry import attributes as A

SCOPE = "branchpoint.importers"


class ForeignCall(Frozen):
    """One LLM call of an imported trace, under the step it was made in."""

    step: int
    agent: str
    model: str
    prompt: str = ""
    completion: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    started_at: datetime | None = None
    seconds: float = 0.0


class ForeignLog(Frozen):
    """One imported log: the run (with `source` and `annotations`), its steps (with their tool
    calls), its LLM calls, and when the run and each step started, where the source says."""

    run: Run
    steps: tuple[Step, ...]
    llm_calls: tuple[ForeignCall, ...] = ()
    started_at: datetime | None = None
    step_starts: tuple[datetime, ...] = ()

    @property
    def truth(self) -> Hypothesis | None:
        """The root cause as a hypothesis of method "ground_truth" (None when not annotated)."""
        roots = self.truths(root_only=True)
        return roots[0] if roots else None

    def truths(self, root_only: bool = False) -> list[Hypothesis]:
        """Every annotated failure (or only the root causes) as "ground_truth" hypotheses."""
        return [
            annotation_hypothesis(self.run.run_id, a)
            for a in self.run.annotations
            if a.root_cause or not root_only
        ]

    @property
    def truncated_steps(self) -> int:
        """Steps whose content is longer than a span attribute keeps (A.MAX_CONTENT_CHARS)."""
        return sum(len(s.content) > A.MAX_CONTENT_CHARS for s in self.steps)


def annotation_hypothesis(run_id: str, annotation: AnnotatedFailure) -> Hypothesis:
    """An annotated failure as a hypothesis of method "ground_truth"."""
    return Hypothesis(
        run_id=run_id,
        agent=annotation.agent,
        step=annotation.step,
        reason=annotation.reason,
        method="ground_truth",
        confidence=1.0,
    )


def stable_hex(text: str, digits: int) -> str:
    """`digits` hex digits derived from `text` (deterministic span and trace ids)."""
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def _row(
    run_id: str, name: str, span_key: str, parent: str | None, attrs: dict[str, Any], at: datetime
) -> dict[str, Any]:
    return {
        "span_id": stable_hex(f"{run_id}/{span_key}", 16),
        "trace_id": stable_hex(run_id, 32),
        "parent_span_id": parent,
        "name": name,
        "kind": attrs[A.KIND],
        "otel_kind": "INTERNAL",
        "run_id": run_id,
        "step": attrs.get(A.STEP),
        "start_time": at,
        "end_time": at,
        "duration_ms": 0.0,
        "status_code": "UNSET",
        "status_message": None,
        "attributes": json.dumps(attrs, separators=(",", ":")),
        "events": "[]",
        "links": "[]",
        "resource": json.dumps({"service.name": SCOPE}),
        "scope": SCOPE,
    }


def run_span_attributes(run: Run) -> dict[str, Any]:
    """The attributes of an imported run's span (a failed, finished run with its source)."""
    return {
        **A.run_identity(run),
        A.STATUS: run.status,
        A.SUCCESS: bool(run.success),
        A.FAULTS: "[]",
        A.SOURCE: run.source or "imported",
        A.ANNOTATIONS: json.dumps([a.model_dump() for a in run.annotations]),
        **({A.FINAL_ANSWER: run.final_answer} if run.final_answer else {}),
        **({A.PARENT_RUN_ID: run.parent_run_id} if run.parent_run_id else {}),
        **({A.FORK_STEP: run.fork_step} if run.fork_step is not None else {}),
    }


def step_span_attributes(step: Step) -> dict[str, Any]:
    """The attributes of one imported step's span (content capped like every span's)."""
    return {
        A.KIND: "step",
        A.OPERATION: "invoke_agent",
        A.OI_KIND: "AGENT",
        A.RUN_ID: step.run_id,
        A.STEP: step.index,
        A.AGENT_NAME: step.agent,
        A.STEP_KIND: step.kind,
        A.CONTENT: A.cap(step.content),
        A.INTERVENED: False,
    }


def _timed(row: dict[str, Any], start: datetime, seconds: float) -> dict[str, Any]:
    return {
        **row,
        "start_time": start,
        "end_time": start + timedelta(seconds=seconds),
        "duration_ms": seconds * 1000.0,
    }


def _call_attributes(run_id: str, call: ForeignCall) -> dict[str, Any]:
    return {
        A.KIND: "chat",
        A.OPERATION: "chat",
        A.OI_KIND: "LLM",
        A.RUN_ID: run_id,
        A.STEP: call.step,
        A.AGENT_NAME: call.agent,
        A.REQUEST_MODEL: call.model,
        A.OI_MODEL: call.model,
        A.PROMPT: A.cap(call.prompt),
        A.COMPLETION: A.cap(call.completion),
        A.INPUT_TOKENS: call.input_tokens,
        A.OUTPUT_TOKENS: call.output_tokens,
    }


def _tool_attributes(step: Step, tool: ToolCall) -> dict[str, Any]:
    return {
        A.KIND: "tool",
        A.OPERATION: "execute_tool",
        A.OI_KIND: "TOOL",
        A.RUN_ID: step.run_id,
        A.STEP: step.index,
        A.AGENT_NAME: step.agent,
        A.TOOL_NAME: tool.tool,
        A.TOOL_INPUT: A.cap(tool.input),
        A.TOOL_OUTPUT: A.cap(tool.output),
        A.TOOL_OK: tool.ok,
    }


def log_spans(log: ForeignLog, at: datetime | None = None) -> list[dict[str, Any]]:
    """`spans` rows of one log: the run, its steps, their tool calls and LLM calls.

    Ids derive from the run id and position, so the same log always gives the same rows. Times
    are the source's where it has them, else the import time with steps 1 ms apart.
    """
    base = log.started_at or at or datetime.now(UTC).replace(tzinfo=None)
    run_id = log.run.run_id
    run_row = _row(run_id, "branchpoint.run", "run", None, run_span_attributes(log.run), base)
    rows = [run_row]
    for i, step in enumerate(log.steps):
        start = log.step_starts[i] if i < len(log.step_starts) else base + timedelta(milliseconds=i)
        key = f"step/{step.index}"
        attrs = step_span_attributes(step)
        row = _timed(
            _row(run_id, f"invoke_agent {step.agent}", key, run_row["span_id"], attrs, start),
            start,
            step.seconds,
        )
        rows.append(row)
        for j, tool in enumerate(step.tool_calls):
            tool_row = _row(
                run_id,
                f"execute_tool {tool.tool}",
                f"{key}/tool/{j}",
                row["span_id"],
                _tool_attributes(step, tool),
                start,
            )
            rows.append(_timed(tool_row, start, tool.seconds))
    step_ids = {r["step"]: r["span_id"] for r in rows if r["kind"] == "step"}
    for j, call in enumerate(log.llm_calls):
        start = call.started_at or base
        chat = _row(
            run_id,
            f"chat {call.model}",
            f"chat/{j}",
            step_ids.get(call.step, run_row["span_id"]),
            _call_attributes(run_id, call),
            start,
        )
        rows.append(_timed(chat, start, call.seconds))
    ends = [r["end_time"] for r in rows]
    run_row["end_time"] = max(ends)
    run_row["duration_ms"] = (run_row["end_time"] - base).total_seconds() * 1000.0
    return rows


def stored_run_ids(store: Any, run_ids: Sequence[str]) -> set[str]:
    """Which of `run_ids` already have a run in the trace database."""
    if not run_ids:
        return set()
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"SELECT run_id FROM runs WHERE run_id IN ({marks})", list(run_ids))
    return {r["run_id"] for r in rows}


def write_logs(store: Any, logs: Sequence[ForeignLog]) -> list[ForeignLog]:
    """Store the logs not stored yet; returns those written (a second import writes none)."""
    known = stored_run_ids(store, [log.run.run_id for log in logs])
    fresh = [log for log in logs if log.run.run_id not in known]
    rows = [row for log in fresh for row in log_spans(log)]
    if rows:
        store.write_spans(rows)
    return fresh
