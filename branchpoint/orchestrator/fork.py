"""Fork a run at step k with a typed intervention and replay it R times, concurrently.

A fork restores the checkpoint the run had before step k, applies the edit with LangGraph's
`update_state` (which makes a branch of the thread), and resumes. Steps before k are shared with
the parent through the checkpoint and the message store: no LLM call is made for them, so a fork
costs the same at step 10 as at step 1000.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START
from pydantic import ValidationError

from branchpoint.agents.backends import parse_model_spec, redact_model
from branchpoint.agents.team_registry import team_for_run
from branchpoint.agents.teams import TeamSpec
from branchpoint.errors import InvalidInterventionError, NotReplayableError, StepOutOfRangeError
from branchpoint.model import (
    INTERVENTION_ADAPTER,
    Instruct,
    Intervention,
    ReplaceMessage,
    ReplacePlan,
    Run,
    RuntimeTrace,
    Step,
    SwapModel,
)
from branchpoint.orchestrator.graph import RunContext, record_step, step_span
from branchpoint.orchestrator.runner import (
    Prepare,
    execute_run,
    preflight_model,
    run_context,
    worker_pool,
)
from branchpoint.orchestrator.runs import load_run, load_steps, require_replayable
from branchpoint.orchestrator.session import Session
from branchpoint.telemetry import attributes as A


def parse_intervention(text: str, step: int | None = None) -> Intervention:
    """An intervention from JSON text (the `step` flag, when given, fills or must match it)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInterventionError(
            f"intervention is not valid JSON: {exc.msg} at char {exc.pos}"
        ) from None
    except (RecursionError, ValueError) as exc:  # nested too deeply, a 5,000-digit number
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise InvalidInterventionError(f"intervention is not usable JSON: {reason}") from None
    if not isinstance(data, dict):
        raise InvalidInterventionError("intervention must be a JSON object with a 'kind'")
    if step is not None:
        if "step" in data and data["step"] != step:
            raise InvalidInterventionError(
                f"intervention says step {data['step']} but --step is {step}"
            )
        data["step"] = step
    try:
        intervention = INTERVENTION_ADAPTER.validate_python(data)
    except ValidationError as exc:  # reduce pydantic's report to its first lines for the CLI
        first = str(exc).splitlines()
        raise InvalidInterventionError(
            "invalid intervention: "
            + "; ".join(first[:3])
            + " (kinds: replace_message, replace_plan, instruct, resample, swap_model, runtime_trace)"
        ) from None
    if isinstance(intervention, SwapModel):  # the one model-spec parser; credentials redacted
        parse_model_spec(intervention.model)
        intervention = intervention.model_copy(update={"model": redact_model(intervention.model)})
    return intervention


def check_fits(intervention: Intervention, steps: list[Step], team: TeamSpec) -> Step:
    """The step an intervention edits, after checking it exists and the edit suits its kind."""
    k = intervention.step
    if not 0 <= k < len(steps):
        raise StepOutOfRangeError(
            f"step {k} is out of range: the run has steps 0..{len(steps) - 1}"
        )
    target = steps[k]
    if (
        isinstance(intervention, Instruct | SwapModel | RuntimeTrace)
        and team.agent(target.agent).prompt is None
    ):
        raise InvalidInterventionError(
            f"step {k} is a {target.agent} turn, which calls no model; use replace_message instead"
        )
    if isinstance(intervention, ReplacePlan) and not (intervention.facts or intervention.plan):
        raise InvalidInterventionError("replace_plan needs 'facts' or 'plan'")
    swapped = intervention.agent if isinstance(intervention, SwapModel) else None
    if swapped is not None and swapped not in team.agent_names:
        raise InvalidInterventionError(
            f"swap_model names agent {swapped!r}, which team {team.name} does not have; "
            f"name one of {', '.join(team.agent_names)}"
        )
    if target.checkpoint_id is None:
        raise InvalidInterventionError(f"step {k} has no checkpoint to fork from (imported log?)")
    return target


def require_checkpoints(session: Session, run: Run, steps: Sequence[Step]) -> None:
    """NotReplayableError unless this session's checkpointer holds the run's checkpoints: a run
    made with another checkpointer (`--checkpointer`) would fork into empty runs."""
    first = next((s.checkpoint_id for s in steps if s.checkpoint_id), None)
    if first is None:
        return  # check_fits names the step without a checkpoint
    config: RunnableConfig = {
        "configurable": {"thread_id": run.thread_id, "checkpoint_ns": "", "checkpoint_id": first}
    }
    if session.checkpointer.get_tuple(config) is None:
        raise NotReplayableError(
            f"run {run.run_id}'s checkpoints are not in this checkpointer "
            f"({type(session.checkpointer).__name__}); fork, replay or debug it with the "
            "--checkpointer it was run with"
        )


def fork_sample(parent_run_id: str, intervention_id: str, repeat: int) -> int:
    """The sampling id of one replay: stable, so a re-planned sweep reproduces the same forks."""
    digest = hashlib.sha256(f"{parent_run_id}:{intervention_id}:{repeat}".encode()).hexdigest()
    return 1 + int(digest[:7], 16)


def sampling_origin(parent: Run) -> str:
    """What a fork's sampling ids derive from. A root run is named by its team, model, seed and
    task (what determines its own samples), so forking the same root run in a fresh database,
    as the demo does, replays the very same samples; a fork of a fork by its run id."""
    if parent.parent_run_id is not None:
        return parent.run_id
    return f"{parent.team}:{parent.model}:{parent.seed}:{parent.task.task_id}"


def plan_text(intervention: ReplacePlan) -> str:
    """The task ledger text a replace_plan writes."""
    parts = [f"FACTS: {intervention.facts}"] if intervention.facts else []
    return "\n".join(parts + ([f"Plan:\n{intervention.plan}"] if intervention.plan else []))


def _prepare(
    session: Session,
    ctx: RunContext,
    parent: Run,
    steps: list[Step],
    intervention: Intervention,
    sample: int,
) -> Prepare:
    """The step that branches the parent's thread at the intervention (run inside the fork's
    span): restore the checkpoint before step k, apply the edit with `update_state`."""
    graph = session.graph(ctx.team)
    target = steps[intervention.step]
    base: RunnableConfig = {
        "configurable": {
            "thread_id": parent.thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": target.checkpoint_id,
        }
    }

    def prepare() -> tuple[None, RunnableConfig]:
        state = {**graph.get_state(base).values, "run_id": ctx.run_id, "sample": sample}
        common = {"run_id": ctx.run_id, "sample": sample}
        as_node: str = steps[intervention.step - 1].agent if intervention.step > 0 else START
        if isinstance(intervention, ReplaceMessage) or (
            isinstance(intervention, ReplacePlan) and target.kind == "plan"
        ):
            content = (
                intervention.content
                if isinstance(intervention, ReplaceMessage)
                else plan_text(intervention)
            )
            with step_span(ctx, target.agent) as span:
                update = record_step(
                    ctx, state, target.agent, content, None, span, target.checkpoint_id
                )
            update, as_node = {**update, **common}, target.agent
        else:
            update = dict(common)
            if isinstance(intervention, Instruct):
                update["directive"] = intervention.instruction
            if isinstance(intervention, RuntimeTrace):
                update["directive"] = intervention.trace
            if isinstance(intervention, ReplacePlan):
                ledger = Step(
                    run_id=ctx.run_id,
                    index=intervention.step,
                    agent="ledger",
                    kind="plan",
                    content=plan_text(intervention),
                )
                update["plan_id"] = ctx.messages.append(None, ledger)
            if isinstance(intervention, SwapModel) and intervention.agent is not None:
                models = dict(state.get("agent_models") or {})
                update["agent_models"] = {**models, intervention.agent: intervention.model}
            elif isinstance(intervention, SwapModel):
                update["model"] = intervention.model
        config = graph.update_state(base, update, as_node=as_node)
        return None, config

    return prepare


@dataclass(frozen=True)
class ForkReplay:
    """A finished fork: its Run and every step of it (the shared prefix included)."""

    run: Run
    steps: list[Step]


def replay_fork(
    session: Session,
    parent: Run,
    steps: list[Step],
    intervention: Intervention,
    repeat: int,
    sweep_id: str | None = None,
    fork_id: str | None = None,
) -> ForkReplay:
    """One replay of a fork: a new Run with lineage to its parent."""
    team = team_for_run(parent)
    fork_id = fork_id or session.new_run_id()
    sample = fork_sample(sampling_origin(parent), intervention.intervention_id, repeat)
    swaps_team = isinstance(intervention, SwapModel) and intervention.agent is None
    model = intervention.model if swaps_team else parent.model  # type: ignore[union-attr]
    run = Run(
        run_id=fork_id,
        task=parent.task,
        team=parent.team,
        model=model,
        seed=parent.seed,
        faults=parent.faults,
        parent_run_id=parent.run_id,
        fork_step=intervention.step,
        intervention_id=intervention.intervention_id,
        thread_id=parent.thread_id,
        sweep_id=sweep_id,
        team_source=parent.team_source,
    )
    ctx = run_context(session, run, team)
    lineage = {
        A.PARENT_RUN_ID: parent.run_id,
        A.FORK_STEP: intervention.step,
        A.INTERVENTION_ID: intervention.intervention_id,
        "branchpoint.intervention": json.dumps(intervention.model_dump(mode="json")),
    }
    done = execute_run(
        session, run, ctx, _prepare(session, ctx, parent, steps, intervention, sample), lineage
    )
    return ForkReplay(done, steps[: intervention.step] + ctx.steps)


def fork_run(
    session: Session,
    run_id: str,
    intervention: Intervention,
    repeats: int = 1,
    sweep_id: str | None = None,
) -> list[Run]:
    """Fork `run_id` at the intervention's step and replay it `repeats` times concurrently."""
    session.flush()
    parent = require_replayable(load_run(session.store, run_id))
    steps = load_steps(session.store, parent)
    team = team_for_run(parent)
    check_fits(intervention, steps, team)
    require_checkpoints(session, parent, steps)
    if isinstance(intervention, SwapModel):
        preflight_model(intervention.model, team, session.settings)
    with worker_pool(repeats) as pool:
        replays = list(
            pool.map(
                lambda r: replay_fork(session, parent, steps, intervention, r, sweep_id),
                range(repeats),
            )
        )
    session.flush()
    return [r.run for r in replays]
