"""A TeamSpec compiled into a LangGraph StateGraph: one node per agent, one step per node run.

The state is small and JSON-like (ids only, the plan included); step messages live in the
append-only message store and the state holds only the newest message's id. A node does not call
the model itself: it asks an `AgentHost` Ray actor to run the turn, then applies the team's pure
`advance` rule, appends the message and emits the step span. Everything a host needs about the
agent (prompt, tools, model, the selector) travels in the request: hosts never look a team up.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RunnableConfig
from opentelemetry import trace
from opentelemetry.trace import Span

from branchpoint.agents.teams import Advance, AgentSpec, TeamSpec
from branchpoint.errors import BranchpointError
from branchpoint.model import (
    Fault,
    SelectorSpec,
    Step,
    StepRequest,
    StepResult,
    Task,
    TranscriptRef,
)
from branchpoint.orchestrator.messages import MessageStore
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.tracing import inject_context


class TeamState(TypedDict, total=False):
    """What a checkpoint holds: O(1) in run length."""

    run_id: str
    head: str | None
    step: int
    next: str | None
    plan_id: str | None  # message holding the task ledger's current plan
    directive: str | None
    done: bool
    final_answer: str | None
    model: str
    sample: int
    stall: int
    last_worker: str | None
    agent_models: dict[str, str] | None  # per-agent model overrides (swap_model with an agent)


@dataclass
class RunContext:
    """Per-run services and facts handed to nodes through LangGraph's runtime context."""

    run_id: str
    team: TeamSpec
    task: Task
    seed: int
    faults: tuple[Fault, ...]
    messages: MessageStore
    tracer: trace.Tracer
    run_span: Span
    call_host: Callable[[StepRequest], StepResult]
    max_steps: int
    record_mode: str = "record"
    steps: list[Step] = field(default_factory=list)

    @property
    def step_limit(self) -> int:
        """The run's step limit, or the team's own when that is lower."""
        return min(self.max_steps, self.team.max_steps or self.max_steps)


TEAM_MODEL = "team"  # the run's model when every agent runs on its own model client


def initial_state(run_id: str, team: TeamSpec, model: str, first: str | None = None) -> TeamState:
    """The state before the first step of a run."""
    return TeamState(
        run_id=run_id,
        head=None,
        step=0,
        next=first or team.first,
        plan_id=None,
        directive=None,
        done=False,
        final_answer=None,
        model=model,
        sample=0,
        stall=0,
        last_worker=None,
    )


def start_state(ctx: RunContext, model: str) -> TeamState:
    """The state before the first step; a selector team without a fixed first speaker asks its
    model who starts."""
    state = initial_state(ctx.run_id, ctx.team, model)
    if ctx.team.selector is None or ctx.team.first is not None:
        return state
    with step_span(ctx, "selector") as span:
        first = select_speaker(ctx, state, span)
    return initial_state(ctx.run_id, ctx.team, model, first=first)


def state_update(
    state: Mapping[str, Any],
    agent: AgentSpec,
    advance: Advance,
    head: str,
    max_steps: int,
) -> dict[str, Any]:
    """The state change after `agent` took step `state['step']` (pure)."""
    step = int(state.get("step", 0)) + 1
    update: dict[str, Any] = {
        "head": head,
        "step": step,
        "next": advance.next,
        "directive": None,
        "done": advance.done or step >= max_steps,
        "stall": advance.stall,
        "final_answer": advance.final_answer,
    }
    if advance.sets_plan:
        update["plan_id"] = head
    if not agent.orchestrates:
        update["last_worker"] = agent.name
    # Only what changed: every key written is a row of the durable checkpoint's writes.
    return {k: v for k, v in update.items() if k not in state or state[k] != v}


def record_step(
    ctx: RunContext,
    state: Mapping[str, Any],
    agent: str,
    content: str,
    result: StepResult | None,
    span: Span,
    checkpoint_id: str | None,
) -> dict[str, Any]:
    """Apply the team's rule to a turn's message, store it, annotate the step span.

    A selector team's next speaker is then picked by its model on a host (unless the run ends
    here, as autogen checks termination before selecting), and recorded on the step.
    """
    advance = ctx.team.advance(state, agent, content)
    index = int(state.get("step", 0))
    step = Step(
        run_id=ctx.run_id,
        index=index,
        agent=agent,
        kind=advance.kind,
        content=content,
        checkpoint_id=checkpoint_id,
        input_tokens=result.input_tokens if result else 0,
        output_tokens=result.output_tokens if result else 0,
        llm_calls=result.llm_calls if result else 0,
        seconds=result.seconds if result else 0.0,
        tool_calls=result.tool_calls if result else (),
    )
    head = ctx.messages.append(state.get("head"), step)
    ctx.steps.append(step)
    if ctx.team.selector is not None and not advance.done:
        chosen = select_speaker(ctx, {**state, "head": head}, span)
        advance = replace(advance, next=chosen)
        span.set_attribute(A.NEXT_SPEAKER, chosen)
    shown = A.cap(content)
    span.set_attributes(
        {
            A.KIND: "step",
            A.OPERATION: "invoke_agent",
            A.RUN_ID: ctx.run_id,
            A.STEP: index,
            A.AGENT_NAME: agent,
            A.STEP_KIND: advance.kind,
            A.CONTENT: shown,
            A.CHECKPOINT_ID: checkpoint_id or "",
            A.INTERVENED: result is None,
            A.NODE_ID: result.node_id if result else "",
            A.INPUT_TOKENS: step.input_tokens,
            A.OUTPUT_TOKENS: step.output_tokens,
            A.OI_KIND: "AGENT",
            A.OI_OUTPUT: shown,
        }
    )
    return state_update(state, ctx.team.agent(agent), advance, head, ctx.step_limit)


def step_span(ctx: RunContext, agent: str) -> Any:
    """Start the span of one step as a child of the run span."""
    return ctx.tracer.start_as_current_span(
        f"invoke_agent {agent}", context=trace.set_span_in_context(ctx.run_span)
    )


def step_request(
    ctx: RunContext, state: Mapping[str, Any], agent: str, span: Span, select_only: bool = False
) -> StepRequest:
    """What a host needs to run `agent`'s turn at this state (or only to pick the next speaker)."""
    spec = ctx.team.agent(agent)
    model = str((state.get("agent_models") or {}).get(agent) or state["model"])
    own_model = model == TEAM_MODEL
    return StepRequest(
        run_id=ctx.run_id,
        team=ctx.team.name,
        step=int(state.get("step", 0)),
        agent=agent,
        system_prompt=ctx.team.prompt_for(state, agent) or "",
        task=ctx.task,
        transcript=(),  # by reference (`messages`): the executor sends what its host lacks
        messages=TranscriptRef(
            head=state.get("head"), plan_id=state.get("plan_id") if spec.sees_plan else None
        ),
        directive=state.get("directive"),
        tools=spec.tools,
        model=(spec.model or TEAM_MODEL) if own_model else model,
        seed=ctx.seed,
        sample=int(state.get("sample", 0)),
        faults=ctx.faults,
        trace_carrier=inject_context(span),
        record_mode=ctx.record_mode,  # type: ignore[arg-type]
        calls_model=spec.calls_model,
        function_tools=spec.function_tools,
        reflect_on_tool_use=spec.reflect_on_tool_use,
        model_client=spec.model_client if own_model else None,
        stop=spec.stop,
        selector=selector_for(ctx.team, model) if select_only else None,
        select_only=select_only,
    )


def selector_for(team: TeamSpec, model: str) -> SelectorSpec | None:
    """The team's selector, on the run's model unless every agent runs on its own."""
    if team.selector is None or model == TEAM_MODEL:
        return team.selector
    return team.selector.model_copy(update={"model": None, "model_client": None})


def select_speaker(ctx: RunContext, state: Mapping[str, Any], span: Span) -> str:
    """Ask a host's selector model who speaks next at this state (no agent turn is run)."""
    last = ctx.messages.get(state["head"]).agent if state.get("head") else None
    agent = last or ctx.team.agents[0].name
    result = ctx.call_host(step_request(ctx, state, agent, span, select_only=True))
    if result.next_speaker is None:
        raise BranchpointError(f"team {ctx.team.name}: the selector chose no speaker")
    return result.next_speaker


def take_turn(
    ctx: RunContext, state: Mapping[str, Any], agent: str, checkpoint_id: str | None
) -> dict[str, Any]:
    """One agent turn: ask a host to run it, then record it."""
    with step_span(ctx, agent) as span:
        result = ctx.call_host(step_request(ctx, state, agent, span))
        return record_step(ctx, state, agent, result.content, result, span, checkpoint_id)


def route(state: Mapping[str, Any]) -> str:
    """Next node: the speaker chosen by the last turn, or the end."""
    return END if state.get("done") or not state.get("next") else str(state["next"])


def build_graph(team: TeamSpec, checkpointer: BaseCheckpointSaver[Any]) -> Any:
    """Compile a team into a checkpointed LangGraph StateGraph."""
    builder = StateGraph(TeamState, context_schema=RunContext)
    targets: dict[Hashable, str] = {END: END}
    targets.update({n: n for n in team.agent_names})
    for name in team.agent_names:
        builder.add_node(name, _node(name))
        builder.add_conditional_edges(name, route, targets)
    builder.add_conditional_edges(START, route, targets)
    return builder.compile(checkpointer=checkpointer)


def _node(agent: str) -> Callable[..., dict[str, Any]]:
    def node(
        state: TeamState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        # The checkpoint this step starts from: forking at this step resumes from it.
        checkpoint_id = ((config.get("configurable") or {}).get("checkpoint_map") or {}).get("")
        return take_turn(runtime.context, state, agent, checkpoint_id)

    node.__name__ = agent
    return node
