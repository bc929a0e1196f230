"""Attribution on imported failure logs (Who&When, AgentRx, OTLP), scored against their annotations.

Imported logs have no checkpoints: they are segmented and attributed, never forked. Each method's
prediction for a run is its earliest blamed step (the decisive mistake); it is scored against
the annotated root cause and, as a second figure, against any annotated failure of the run
(AgentRx annotates several per run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from branchpoint.importers.logs import ForeignLog
from branchpoint.interventions.judge import Judge, judging
from branchpoint.interventions.pipeline import RunDebug, hypothesize, store_report
from branchpoint.interventions.segment import segment_by_kinds
from branchpoint.interventions.whowhen import score_attribution, truths_of
from branchpoint.model import Hypothesis

Predictions = dict[str, dict[str, Hypothesis | None]]
Scores = dict[str, dict[str, float | int]]


def score_any(
    predictions: Mapping[str, Hypothesis | None], logs: Sequence[ForeignLog]
) -> dict[str, float | int]:
    """Step- and agent-level accuracy against any annotated failure of each annotated run."""
    annotated = [log for log in logs if log.run.annotations]
    step_hits = agent_hits = 0
    for log in annotated:
        guess = predictions.get(log.run.run_id)
        if guess is None:
            continue
        step_hits += any(a.step == guess.step for a in log.run.annotations)
        agent_hits += any(a.agent.lower() == guess.agent.lower() for a in log.run.annotations)
    n = len(annotated)
    return {
        "any_step_accuracy": step_hits / n if n else 0.0,
        "any_agent_accuracy": agent_hits / n if n else 0.0,
    }


def predict(
    store: Any,
    logs: Sequence[ForeignLog],
    methods: Sequence[str],
    judge: Judge | None,
    on_done: Callable[[], None] | None = None,
) -> Predictions:
    """Each method on each log (hypotheses stored); method -> run id -> earliest blamed step."""
    predictions: Predictions = {m: {} for m in methods}
    for log in logs:
        steps = list(log.steps)
        report = RunDebug(run=log.run, steps=steps, trials=segment_by_kinds(steps))
        for method in methods:
            with judging(log.run.run_id):
                found = hypothesize(log.run, steps, report.trials, method, judge, {}).hypotheses
            report.hypotheses += found
            predictions[method][log.run.run_id] = min(found, key=lambda h: h.step, default=None)
            if on_done is not None:
                on_done()
        store_report(store, report, None)
    return predictions


def score_logs(predictions: Predictions, logs: Sequence[ForeignLog]) -> Scores:
    """Per method: `n` annotated runs, `predicted`, agent/step/joint accuracy against the root
    cause (exact step), and `any_step_accuracy` / `any_agent_accuracy` against any failure."""
    truths = truths_of(logs)
    return {
        m: {**score_attribution(found, truths), **score_any(found, logs)}
        for m, found in predictions.items()
    }


def scores_by_team(predictions: Predictions, logs: Sequence[ForeignLog]) -> dict[str, Scores]:
    """`score_logs` per team (a Who&When or AgentRx subset), teams in name order."""
    teams = sorted({log.run.team for log in logs})
    return {t: score_logs(predictions, [log for log in logs if log.run.team == t]) for t in teams}


def attribute_logs(
    store: Any,
    logs: Sequence[ForeignLog],
    methods: Sequence[str],
    judge: Judge | None,
    on_done: Callable[[], None] | None = None,
) -> Scores:
    """Run each method on each log, store the hypotheses, and score them (`score_logs`)."""
    return score_logs(predict(store, logs, methods, judge, on_done), logs)
