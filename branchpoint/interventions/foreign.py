"""Foreign failure logs (Who&When) as runs in the trace database, and attribution scored on them.

Imported logs become a run span with one step span per message, so `runs`, `steps` and every
query work on them; they have no checkpoints, so they can be segmented and attributed but not
forked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace

from branchpoint.interventions.judge import Judge
from branchpoint.interventions.pipeline import RunDebug, hypothesize, store_report
from branchpoint.interventions.segment import segment_by_kinds
from branchpoint.interventions.whowhen import WhoWhenLog, score_attribution, truths_of
from branchpoint.model import Hypothesis
from branchpoint.orchestrator.runner import run_attributes
from branchpoint.telemetry import attributes as A


def import_log(tracer: trace.Tracer, log: WhoWhenLog) -> None:
    """Emit a Who&When log as a run span with its steps as children (status failed)."""
    run = log.run
    attrs = {
        **run_attributes(run),
        A.STATUS: "failed",
        A.SUCCESS: False,
        A.FAULTS: json.dumps([log.truth.model_dump()]),  # the annotated mistake, as ground truth
    }
    with tracer.start_as_current_span("branchpoint.run", attributes=attrs) as run_span:
        for step in log.steps:
            with tracer.start_as_current_span(
                f"invoke_agent {step.agent}", context=trace.set_span_in_context(run_span)
            ) as span:
                span.set_attributes(
                    {
                        A.KIND: "step",
                        A.OPERATION: "invoke_agent",
                        A.RUN_ID: run.run_id,
                        A.STEP: step.index,
                        A.AGENT_NAME: step.agent,
                        A.STEP_KIND: step.kind,
                        A.CONTENT: A.cap(step.content),
                        A.INTERVENED: False,
                    }
                )


def attribute_logs(
    store: Any,
    logs: Sequence[WhoWhenLog],
    methods: Sequence[str],
    judge: Judge | None,
    on_done: Callable[[], None] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Run each hypothesis method on each log, store the hypotheses, score them per method."""
    truths = truths_of(logs)
    predictions: dict[str, dict[str, Hypothesis | None]] = {m: {} for m in methods}
    for log in logs:
        steps = list(log.steps)
        report = RunDebug(run=log.run, steps=steps, trials=segment_by_kinds(steps))
        for method in methods:
            found = hypothesize(log.run, steps, report.trials, method, judge, {}).hypotheses
            report.hypotheses += found
            # One prediction per run and method: the earliest step blamed (the decisive mistake).
            predictions[method][log.run.run_id] = min(found, key=lambda h: h.step, default=None)
            if on_done is not None:
                on_done()
        store_report(store, report, None)
    return {m: score_attribution(predictions[m], truths) for m in methods}
