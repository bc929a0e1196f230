"""The DoVer pipeline over one failed run: segment, hypothesize, recommend, replay, score, verdict.

Every fork is a real replay through the fork machinery; results land in the `trials`,
`hypotheses`, `interventions`, `outcomes` and `verdicts` tables of the trace database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from branchpoint.agents.team_registry import team_for_run
from branchpoint.agents.teams import TeamSpec
from branchpoint.errors import BranchpointError
from branchpoint.interventions import attribution
from branchpoint.interventions.judge import Judge
from branchpoint.interventions.milestones import (
    Milestone,
    achieved,
    judge_milestones,
    predicate_milestones,
    progress_delta,
)
from branchpoint.interventions.recommend import leaks, recommend
from branchpoint.interventions.segment import segment_by_kinds, segment_with_judge
from branchpoint.interventions.upgrade import upgrade_arm, upgrade_hypotheses
from branchpoint.interventions.verdicts import decide_verdict, is_fulfilled
from branchpoint.model import (
    Hypothesis,
    Intervention,
    InterventionRecord,
    Outcome,
    Resample,
    Run,
    Step,
    SwapModel,
    Trial,
    Verdict,
    content_id,
)
from branchpoint.orchestrator.fork import ForkReplay, check_fits, replay_fork, require_checkpoints
from branchpoint.orchestrator.runner import worker_pool
from branchpoint.orchestrator.runs import load_run, load_steps, require_replayable
from branchpoint.orchestrator.session import Session
from branchpoint.telemetry.store import TraceStore

# Called with None when a fork starts and with its Outcome when it ends (progress displays).
ForkEvents = Callable[[Outcome | None], None]
FLUSH_ROWS = 32
FLUSH_SECONDS = 2.0
JUDGE_METHODS = tuple(m.name for m in attribution.registered_methods().values() if m.needs_judge)
METHODS = ("value_curve", *JUDGE_METHODS)

# Why the pipeline has no verdict for something: a method found no hypothesis (flat value
# curve, no judge, a judge reply that stayed unusable), or its recommended edit was dropped
# because it does not fit its step, or because it leaks the answer.
FailureKind = Literal["no_hypothesis", "rejected", "leaked"]


@dataclass(frozen=True)
class PipelineFailure:
    """One thing the pipeline could not test, and why."""

    method: str
    kind: FailureKind
    message: str

    def __str__(self) -> str:
        return f"{self.method}: {self.message}"


@dataclass(frozen=True)
class DebugConfig:
    """How to debug: which methods, how many replays per arm, how many forks at once."""

    methods: tuple[str, ...] = ("value_curve", "dover")
    repeats: int = 3
    curve_repeats: int = 6
    concurrency: int = 8
    judge: Judge | None = None
    sweep_id: str | None = None
    # Also test each hypothesis by re-running its blamed agent on this (stronger) model.
    swap_model: str | None = None
    # A model-upgrade sweep: each model agent's first turn re-run on this model (`upgrade.py`).
    upgrade_model: str | None = None


@dataclass
class HypothesisTest:
    """One hypothesis, the edit recommended for it, its replays, controls and verdict."""

    hypothesis: Hypothesis
    intervention: Intervention
    outcomes: list[Outcome]
    controls: list[Outcome]
    verdict: Verdict


@dataclass
class RunDebug:
    """Everything the pipeline learned about one failed run."""

    run: Run
    steps: list[Step]
    trials: list[Trial]
    hypotheses: list[Hypothesis] = field(default_factory=list)
    failures: list[PipelineFailure] = field(default_factory=list)
    tests: list[HypothesisTest] = field(default_factory=list)
    curve: dict[int, float] = field(default_factory=dict)


class ForkBatch:
    """Runs many fork replays of one run concurrently and scores each as an Outcome.

    Inside a sweep every replay is an item with a stable id; an item whose outcome is already
    stored is not run again, so a killed sweep resumes without running any fork twice.
    """

    def __init__(
        self,
        session: Session,
        run: Run,
        steps: list[Step],
        milestones: list[Milestone],
        config: DebugConfig,
        on_fork: ForkEvents | None = None,
    ) -> None:
        self.session, self.run, self.steps, self.config = session, run, steps, config
        self.milestones = milestones
        self.original_achieved = achieved(milestones, steps, run.task)
        self.on_fork = on_fork
        self.done = stored_outcomes(session.store, config.sweep_id, run.run_id)
        self._pending: list[dict[str, Any]] = []
        self._flushed = time.monotonic()
        self._lock = threading.Lock()

    def outcomes(
        self, arms: Sequence[tuple[Intervention, str | None]], repeats: int
    ) -> list[list[Outcome]]:
        """For each (intervention, hypothesis id) arm, its `repeats` scored replays."""
        jobs = [(i, iv, hyp, r) for i, (iv, hyp) in enumerate(arms) for r in range(repeats)]
        if self.config.sweep_id:
            self.session.store.write_rows(
                "sweep_items",
                [
                    {
                        "item_id": self.item_id(iv, hyp, r),
                        "sweep_id": self.config.sweep_id,
                        "status": "planned",
                        "payload": json.dumps(
                            {
                                "run_id": self.run.run_id,
                                "intervention": iv.model_dump(mode="json"),
                                "hypothesis_id": hyp,
                                "repeat": r,
                            }
                        ),
                    }
                    for _, iv, hyp, r in jobs
                    if self.item_id(iv, hyp, r) not in self.done
                ],
            )
        try:
            with worker_pool(self.config.concurrency) as pool:
                scored = list(pool.map(lambda job: self._one(*job[1:]), jobs))
        finally:
            self._store_outcome(None)
        grouped: list[list[Outcome]] = [[] for _ in arms]
        for (i, *_), outcome in zip(jobs, scored, strict=True):
            grouped[i].append(outcome)
        return grouped

    def _store_outcome(self, outcome: Outcome | None) -> None:
        """Buffer outcome rows and write them in batches (None: write what is buffered).

        One upsert per fork would make the single trace sink the bottleneck of a sweep; a
        batch is written every FLUSH_ROWS rows or FLUSH_SECONDS. A driver killed in between
        loses only buffered outcomes, whose forks `--resume` runs again.
        """
        with self._lock:
            if outcome is not None:
                self._pending.append(outcome.model_dump())
            due = outcome is None or len(self._pending) >= FLUSH_ROWS
            if not (due or time.monotonic() - self._flushed > FLUSH_SECONDS) or not self._pending:
                return
            rows, self._pending, self._flushed = self._pending, [], time.monotonic()
        self.session.store.write_rows("outcomes", rows)

    def item_id(self, iv: Intervention, hypothesis_id: str | None, repeat: int) -> str:
        """The stable id of one planned replay."""
        return content_id(
            "item",
            [self.config.sweep_id, self.run.run_id, iv.intervention_id, hypothesis_id, repeat],
        )

    def _one(self, iv: Intervention, hypothesis_id: str | None, repeat: int) -> Outcome:
        item = self.item_id(iv, hypothesis_id, repeat)
        if item in self.done:
            return self.done[item]
        if self.on_fork is not None:
            self.on_fork(None)
        fork_id = f"{item}.{self.session.ids.new_id('', 6)}" if self.config.sweep_id else None
        replay = replay_fork(
            self.session, self.run, self.steps, iv, repeat, self.config.sweep_id, fork_id
        )
        outcome = self.score(replay, iv, hypothesis_id, repeat)
        if self.config.sweep_id:
            outcome = outcome.model_copy(update={"item_id": item})  # its own column
        self.done[item] = (
            outcome  # a later arm with the same item (a control = a curve fork) reuses it
        )
        self._store_outcome(outcome)
        if self.on_fork is not None:
            self.on_fork(outcome)
        return outcome

    def score(
        self, replay: ForkReplay, iv: Intervention, hypothesis_id: str | None, repeat: int
    ) -> Outcome:
        """An Outcome for one replay: success, milestone progress, fulfilment, cost."""
        k = len(self.milestones)
        got = achieved(self.milestones, replay.steps, self.run.task)
        original = self.steps[iv.step] if iv.step < len(self.steps) else None
        forked = replay.steps[iv.step] if iv.step < len(replay.steps) else None
        run = replay.run
        return Outcome(
            fork_run_id=run.run_id,
            parent_run_id=self.run.run_id,
            intervention_id=iv.intervention_id,
            intervention_kind=iv.kind,
            step=iv.step,
            repeat=repeat,
            success=bool(run.success),
            milestones_achieved=got,
            milestones_total=k,
            progress_delta=progress_delta(got, self.original_achieved, k),
            fulfilled=run.status != "errored" and is_fulfilled(original, forked, iv),
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            seconds=run.seconds,
            hypothesis_id=hypothesis_id,
            sweep_id=self.config.sweep_id,
        )


def stored_outcomes(store: TraceStore, sweep_id: str | None, run_id: str) -> dict[str, Outcome]:
    """Outcomes a sweep already has for a run, keyed by their sweep item id."""
    if sweep_id is None:
        return {}
    rows = store.query(
        "SELECT * FROM outcomes WHERE sweep_id = ? AND parent_run_id = ?", [sweep_id, run_id]
    )
    return {r["item_id"]: Outcome.model_validate(r) for r in rows if r["item_id"]}


def value_curve(batch: ForkBatch, repeats: int) -> dict[int, float]:
    """V(k): the success rate of `resample` forks from each step k."""
    arms: list[tuple[Intervention, str | None]] = [
        (Resample(step=k), None) for k in range(len(batch.steps))
    ]
    results = batch.outcomes(arms, repeats)
    return {k: sum(o.success for o in group) / len(group) for k, group in enumerate(results)}


def hypothesize(
    run: Run,
    steps: Sequence[Step],
    trials: Sequence[Trial],
    method: str,
    judge: Judge | None,
    curve: Mapping[int, float],
    curve_repeats: int = 1,
) -> attribution.AttributionResult:
    """Hypotheses of one registered method (an empty result with the reason when it cannot run)."""
    evidence = attribution.Evidence(run, steps, trials, judge, curve, curve_repeats)
    return attribution.attribute(method, evidence)


def judge_for(session: Session, model: str | None) -> Judge | None:
    """An LLM judge on `model` whose calls are recorded in the trace database (replayable) and
    traced as `chat` spans; None without a model or for `none` (only the value curve and ground
    truth can run then)."""
    from branchpoint.interventions.judge import open_judge

    return open_judge(model, session.store, session.settings, session.tracer)


def milestones_for(run: Run, judge: Judge | None) -> list[Milestone]:
    """Deterministic milestones (a worked solution's values, a code task's visible examples),
    else LLM-extracted ones (with a judge)."""
    found = predicate_milestones(run.task)
    return found if found or judge is None else judge_milestones(run.task, judge)


def fix_arms(
    recommended: Intervention, steps: Sequence[Step], team: TeamSpec, swap_model: str | None
) -> list[Intervention]:
    """A hypothesis' arms: its recommended fix and, given a stronger model, `swap_model` for the
    agent at the same step (the fix's step: a blamed tool result is fixed at the turn that
    called the tool, whose agent calls a model; a tool turn has no model to swap)."""
    target = steps[recommended.step]
    if swap_model is None or not team.agent(target.agent).calls_model:
        return [recommended]
    return [recommended, SwapModel(step=target.index, model=swap_model, agent=target.agent)]


def debug_run(
    session: Session, run_id: str, config: DebugConfig, on_fork: ForkEvents | None = None
) -> RunDebug:
    """Run the whole pipeline on one run and store its tables."""
    session.flush()
    run = require_replayable(load_run(session.store, run_id))
    steps = load_steps(session.store, run)
    require_checkpoints(session, run, steps)
    team = team_for_run(run)
    # The judge's segmentation costs a model call; only a method that reads trials needs it.
    needs_trials = any(attribution.method_named(m).needs_trials for m in config.methods)
    trials = (
        segment_with_judge(run, steps, config.judge)
        if config.judge is not None and needs_trials
        else segment_by_kinds(steps)
    )
    report = RunDebug(run=run, steps=steps, trials=trials)
    batch = ForkBatch(session, run, steps, milestones_for(run, config.judge), config, on_fork)
    if "value_curve" in config.methods:
        report.curve = value_curve(batch, config.curve_repeats)
    for method in config.methods:
        result = hypothesize(
            run, steps, trials, method, config.judge, report.curve, config.curve_repeats
        )
        report.hypotheses += result.hypotheses
        report.failures += [PipelineFailure(method, "no_hypothesis", f) for f in result.failures]
    tested: list[tuple[Hypothesis, Intervention]] = []
    for hyp in report.hypotheses:
        iv = recommend(hyp, run, steps, config.judge)
        try:
            check_fits(iv, steps, team)
        except BranchpointError as exc:  # an edit that does not fit its step: not testable
            report.failures.append(
                PipelineFailure(hyp.method, "rejected", f"recommendation rejected ({exc})")
            )
            continue
        if leaks(iv, run.task):
            report.failures.append(
                PipelineFailure(hyp.method, "leaked", "recommendation leaked the answer; dropped")
            )
            continue
        tested += [(hyp, arm) for arm in fix_arms(iv, steps, team, config.swap_model)]
    if config.upgrade_model is not None:  # tested by the upgrade itself: no edit to recommend
        upgrades = upgrade_hypotheses(run, steps, team)
        report.hypotheses += upgrades
        tested += [(hyp, upgrade_arm(hyp, config.upgrade_model)) for hyp in upgrades]
    control_steps = sorted({iv.step for _, iv in tested})
    arms = [(iv, hyp.hypothesis_id) for hyp, iv in tested] + [
        (Resample(step=k), None) for k in control_steps
    ]
    results = batch.outcomes(arms, config.repeats)
    controls = dict(zip(control_steps, results[len(tested) :], strict=True))
    for (hyp, iv), outcomes in zip(tested, results, strict=False):
        verdict = decide_verdict(
            hyp.hypothesis_id, run.run_id, iv.intervention_id, outcomes, controls[iv.step]
        )
        report.tests.append(HypothesisTest(hyp, iv, outcomes, controls[iv.step], verdict))
    store_report(session.store, report, config.sweep_id)
    return report


def store_report(store: TraceStore, report: RunDebug, sweep_id: str | None) -> None:
    """Write trials, hypotheses, interventions and verdicts of one debugged run."""
    store.write_rows("trials", report.trials)
    store.write_rows("hypotheses", report.hypotheses)
    store.write_rows(
        "interventions",
        [
            InterventionRecord(
                intervention_id=t.intervention.intervention_id,
                run_id=report.run.run_id,
                hypothesis_id=t.hypothesis.hypothesis_id,
                kind=t.intervention.kind,
                step=t.intervention.step,
                payload=t.intervention,
                sweep_id=sweep_id,
            )
            for t in report.tests
        ],
    )
    store.write_rows("verdicts", [t.verdict for t in report.tests])
