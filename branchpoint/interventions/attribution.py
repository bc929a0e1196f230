"""Failure attribution: who failed, at which step, and why.

The Who&When baselines (all-at-once, step-by-step, binary search) and the DoVer per-trial
proposer ask an LLM judge, which always sees the ground-truth answer; the counterfactual value
curve reads the success rates of resample forks and needs no judge. Judge replies are validated:
a step index outside the run or an unknown agent is rejected, and a reply still unusable after
retries leaves no hypothesis, only a reason in `AttributionResult.failures`.

Methods are found by name in the registry `METHODS` (see `register` and `attribute`).
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from branchpoint.errors import BranchpointError
from branchpoint.importers.logs import annotation_hypothesis
from branchpoint.interventions.judge import (
    Judge,
    ask_json,
    parse_step_index,
    render_log,
    render_prompt,
)
from branchpoint.model import Hypothesis, Run, Step, Trial

log = logging.getLogger(__name__)
MAX_CHARS = 300  # per step in prompts: small local models have 4k-token contexts


@dataclass
class AttributionResult:
    """The hypotheses one method produced, and why it produced none where it failed."""

    hypotheses: list[Hypothesis] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    """What an attribution method may look at: the run, its steps and trials, a judge, and the
    value curve V(k) (measured by the pipeline before the methods run)."""

    run: Run
    steps: Sequence[Step]
    trials: Sequence[Trial] = ()
    judge: Judge | None = None
    curve: Mapping[int, float] = field(default_factory=dict)
    curve_repeats: int = 1


@dataclass(frozen=True)
class AttributionMethod:
    """A registered method: its name, whether it needs a judge, and its function."""

    name: str
    find: Callable[[Evidence], AttributionResult]
    needs_judge: bool
    needs_curve: bool = False
    needs_trials: bool = False  # reads `Evidence.trials`: the judge segments the run first


METHODS: dict[str, AttributionMethod] = {}
# Modules whose methods register themselves and import this one (so it cannot import them).
BUILTIN_METHOD_MODULES = ("branchpoint.interventions.ldb",)


def registered_methods() -> dict[str, AttributionMethod]:
    """Every method by name, the built-in ones of other modules included."""
    for module in BUILTIN_METHOD_MODULES:
        importlib.import_module(module)
    return METHODS


def register(
    name: str, *, needs_judge: bool, needs_curve: bool = False, needs_trials: bool = False
) -> Callable[[Callable[[Evidence], AttributionResult]], Callable[[Evidence], AttributionResult]]:
    """Add a method to the registry under `name` (a decorator). `needs_trials`: the method reads
    the run's trials, which the judge then splits at the planning steps it finds (else the
    trials are split at the steps whose kind is `plan`)."""

    def add(
        find: Callable[[Evidence], AttributionResult],
    ) -> Callable[[Evidence], AttributionResult]:
        METHODS[name] = AttributionMethod(name, find, needs_judge, needs_curve, needs_trials)
        return find

    return add


def method_named(name: str) -> AttributionMethod:
    """The registered method `name`, or an error listing the known ones."""
    methods = registered_methods()
    try:
        return methods[name]
    except KeyError:
        raise BranchpointError(
            f"unknown method {name!r}; choose from {', '.join(methods)}"
        ) from None


def attribute(name: str, evidence: Evidence) -> AttributionResult:
    """Hypotheses of one method (an empty result with the reason when it cannot run)."""
    return method_named(name).find(evidence)


def _context(run: Run, steps: Sequence[Step]) -> dict[str, str]:
    return {
        "question": run.task.question,
        "answer": run.task.answer if run.task.answer is not None else "(unknown)",
        "agents": ", ".join(dict.fromkeys(s.agent for s in steps)),
    }


def _blame_parser(
    steps: Sequence[Step], lo: int, hi: int
) -> Callable[[dict[str, Any]], tuple[str, int, str]]:
    """Validator of {"agent","step","reason"} with the step in [lo, hi] and a known agent."""
    by_index = {s.index: s for s in steps}
    agents = {s.agent.lower(): s.agent for s in steps}

    def parse(reply: dict[str, Any]) -> tuple[str, int, str]:
        step = parse_step_index(reply["step"])
        if step is None or not lo <= step <= hi or step not in by_index:
            raise ValueError(f"step must be a step number between {lo} and {hi}")
        agent = agents.get(str(reply["agent"]).strip().lower())
        if agent is None:
            raise ValueError(f"agent must be one of: {', '.join(agents.values())}")
        speaker = by_index[step].agent
        if agent != speaker:  # the blamed agent must be the one acting at the blamed step
            raise ValueError(
                f"{agent} does not speak at step {step} ({speaker} does); "
                f"name {speaker} for step {step}, or a step where {agent} speaks"
            )
        return agent, step, str(reply.get("reason", "")).strip()

    return parse


def all_at_once(run: Run, steps: Sequence[Step], judge: Judge) -> AttributionResult:
    """One call with the whole indexed log: the decisive mistake's agent, step and reason."""
    result = AttributionResult()
    if not steps:
        return result
    system, user = render_prompt(
        "all_at_once", log=render_log(steps, MAX_CHARS), **_context(run, steps)
    )
    parse = _blame_parser(steps, steps[0].index, steps[-1].index)
    blame = ask_json(judge, system, user, parse, failures=result.failures)
    if blame is not None:
        agent, step, reason = blame
        result.hypotheses.append(
            Hypothesis(
                run_id=run.run_id, agent=agent, step=step, reason=reason, method="all_at_once"
            )
        )
    return _logged(run, "all_at_once", result)


def step_by_step(run: Run, steps: Sequence[Step], judge: Judge) -> AttributionResult:
    """Judge each step in order with the log so far; the first step judged a mistake is blamed."""
    result = AttributionResult()

    def parse(reply: dict[str, Any]) -> tuple[bool, str]:
        verdict = reply["mistake"]
        if isinstance(verdict, str) and verdict.strip().lower() in ("true", "yes", "false", "no"):
            verdict = verdict.strip().lower() in ("true", "yes")
        if not isinstance(verdict, bool):
            raise TypeError('"mistake" must be true or false')
        return verdict, str(reply.get("reason", "")).strip()

    for position, step in enumerate(steps):
        system, user = render_prompt(
            "step_by_step",
            log=render_log(steps[: position + 1], MAX_CHARS),
            step=step.index,
            **{**_context(run, steps), "agent": step.agent},
        )
        failures: list[str] = []
        judged = ask_json(judge, system, user, parse, failures=failures)
        if judged is None:
            result.failures.append(f"step {step.index}: {failures[-1]}")
            continue
        mistake, reason = judged
        if mistake:
            result.hypotheses.append(
                Hypothesis(
                    run_id=run.run_id,
                    agent=step.agent,
                    step=step.index,
                    reason=reason,
                    method="step_by_step",
                )
            )
            break
    else:
        result.failures.append("no step was judged a mistake")
    return _logged(run, "step_by_step", result)


def binary_search(run: Run, steps: Sequence[Step], judge: Judge) -> AttributionResult:
    """Halve the log, ask which half holds the decisive mistake, and recurse to one step."""
    result = AttributionResult()
    if not steps:
        return result

    def parse(reply: dict[str, Any]) -> tuple[bool, str]:
        half = str(reply["half"]).strip().lower()
        if half not in ("first", "second", "upper", "lower"):
            raise ValueError('"half" must be "first" or "second"')
        return half in ("first", "upper"), str(reply.get("reason", "")).strip()

    lo, hi, reason = 0, len(steps) - 1, ""
    while lo < hi:
        mid = (lo + hi) // 2
        system, user = render_prompt(
            "binary_search",
            log=render_log(steps[lo : hi + 1], MAX_CHARS),
            lo=steps[lo].index,
            mid=steps[mid].index,
            next=steps[mid + 1].index,
            hi=steps[hi].index,
            **_context(run, steps),
        )
        choice = ask_json(judge, system, user, parse, failures=result.failures)
        if choice is None:
            return _logged(run, "binary_search", result)
        first, reason = choice
        lo, hi = (lo, mid) if first else (mid + 1, hi)
    result.hypotheses.append(
        Hypothesis(
            run_id=run.run_id,
            agent=steps[lo].agent,
            step=steps[lo].index,
            reason=reason,
            method="binary_search",
        )
    )
    return _logged(run, "binary_search", result)


def summarize_trial(trial: Trial, steps: Sequence[Step], max_chars: int = 160) -> str:
    """One line per trial for later prompts: its plan's first line and the step it ended on."""
    inside = [s for s in steps if trial.start <= s.index < trial.end]
    if not inside:
        return f"Trial {trial.index}: no steps"

    def first_line(step: Step) -> str:
        line = next((ln.strip() for ln in step.content.splitlines() if ln.strip()), "")
        return line[:max_chars]

    plan = next((s for s in inside if s.kind == "plan"), inside[0])
    last = inside[-1]
    return (
        f"Trial {trial.index} (steps {trial.start}-{trial.end - 1}): plan: {first_line(plan)}; "
        f"ended with [Step {last.index}] {last.agent}: {first_line(last)}"
    )


def dover_propose(
    run: Run, steps: Sequence[Step], trials: Sequence[Trial], judge: Judge
) -> AttributionResult:
    """The DoVer proposer: one call per trial, with summaries of earlier trials; one hypothesis each."""
    result = AttributionResult()
    for position, trial in enumerate(trials):
        inside = [s for s in steps if trial.start <= s.index < trial.end]
        if not inside:
            continue
        previous = "\n".join(summarize_trial(t, steps) for t in trials[:position]) or "(none)"
        system, user = render_prompt(
            "dover_propose",
            previous=previous,
            trial=trial.index,
            start=inside[0].index,
            last=inside[-1].index,
            log=render_log(inside, MAX_CHARS),
            **_context(run, inside),
        )
        failures: list[str] = []
        parse = _blame_parser(inside, inside[0].index, inside[-1].index)
        blame = ask_json(judge, system, user, parse, failures=failures)
        if blame is None:
            result.failures.append(f"trial {trial.index}: {failures[-1]}")
            continue
        agent, step, reason = blame
        result.hypotheses.append(
            Hypothesis(
                run_id=run.run_id,
                agent=agent,
                step=step,
                reason=reason,
                method="dover",
                trial=trial.index,
            )
        )
    return _logged(run, "dover", result)


def _binomial_loglik(successes: float, n: float) -> float:
    """Log-likelihood of `successes` in `n` trials at their maximum-likelihood rate."""
    if n <= 0 or successes <= 0 or successes >= n:
        return 0.0
    p = successes / n
    return successes * math.log(p) + (n - successes) * math.log(1 - p)


def value_curve_hypothesis(
    run: Run, steps: Sequence[Step], curve: Mapping[int, float], repeats: int = 1
) -> Hypothesis | None:
    """The step after which V, the success rate of resample forks from step k, drops.

    V(k) comes from `repeats` forks per step, so it is a binomial count, not a clean curve. The
    change point k is the two-segment split (steps <= k at one rate, steps > k at a lower one)
    with the highest binomial likelihood, ties going to the later k; the failed original counts
    as one more failed trial after the last step (nothing re-run, nothing fixed), so a fault at
    the last step is visible too. This is robust to noisy early V's, which a difference of means
    is not. None when no split has a positive drop (e.g. V flat zero: nothing recoverable).
    """
    points = sorted((k, v) for k, v in curve.items())
    if not points or all(v <= 0 for _, v in points):
        return None
    trials = [(v * repeats, float(repeats)) for _, v in points] + [(0.0, 1.0)]
    best: tuple[float, int, float, float] | None = None
    for i in range(len(points)):
        s_a, n_a = (sum(t[j] for t in trials[: i + 1]) for j in (0, 1))
        s_b, n_b = (sum(t[j] for t in trials[i + 1 :]) for j in (0, 1))
        before, after = s_a / n_a, s_b / n_b
        if before <= after:
            continue
        loglik = _binomial_loglik(s_a, n_a) + _binomial_loglik(s_b, n_b)
        # A small tolerance so that float noise cannot break a tie against the later k.
        if best is None or loglik >= best[0] - 1e-9:
            best = (loglik, i, before, after)
    by_index = {s.index: s for s in steps}
    if best is None or points[best[1]][0] not in by_index:
        return None
    _, i, before, after = best
    k = points[i][0]
    reason = (
        f"resample success rate drops after step {k}: V({k})={points[i][1]:.2f}, "
        f"rate up to step {k}={before:.2f}, after it={after:.2f} "
        "(the failed original counts as one failed trial)"
    )
    return Hypothesis(
        run_id=run.run_id,
        agent=by_index[k].agent,
        step=k,
        reason=reason,
        method="value_curve",
        confidence=min(1.0, before - after),
    )


def sim_ground_truth(run: Run) -> list[Hypothesis]:
    """The faults injected into a `sim` run, and the annotated root causes of an imported log,
    as hypotheses of method "ground_truth"."""
    faults = [
        Hypothesis(
            run_id=run.run_id,
            agent=f.agent,
            step=f.step,
            reason=f"injected fault: {f.kind}",
            method="ground_truth",
            confidence=1.0,
        )
        for f in run.faults
    ]
    return faults + [annotation_hypothesis(run.run_id, a) for a in run.annotations if a.root_cause]


def _logged(run: Run, method: str, result: AttributionResult) -> AttributionResult:
    if result.failures:
        log.info("%s on %s: %s", method, run.run_id, "; ".join(result.failures))
    return result


# The registry. A method that needs a judge reports that as its failure when it has none.


@register("value_curve", needs_judge=False, needs_curve=True)
def _value_curve(e: Evidence) -> AttributionResult:
    hyp = value_curve_hypothesis(e.run, e.steps, e.curve, e.curve_repeats)
    return AttributionResult([hyp] if hyp else [], [] if hyp else ["value curve is flat"])


@register("ground_truth", needs_judge=False)
def _ground_truth(e: Evidence) -> AttributionResult:
    return AttributionResult(sim_ground_truth(e.run), [])


def _register_judged(
    name: str, find: Callable[[Evidence, Judge], AttributionResult], needs_trials: bool = False
) -> None:
    def judged(e: Evidence) -> AttributionResult:
        if e.judge is None:
            return AttributionResult([], [f"{name} needs a judge model (--judge)"])
        return find(e, e.judge)

    register(name, needs_judge=True, needs_trials=needs_trials)(judged)


_register_judged("all_at_once", lambda e, judge: all_at_once(e.run, e.steps, judge))
_register_judged("step_by_step", lambda e, judge: step_by_step(e.run, e.steps, judge))
_register_judged("binary_search", lambda e, judge: binary_search(e.run, e.steps, judge))
_register_judged(
    "dover", lambda e, judge: dover_propose(e.run, e.steps, e.trials, judge), needs_trials=True
)
