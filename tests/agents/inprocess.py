"""Run a branchpoint team in this process (no Ray): an AgentRuntime answers the graph's turns."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry import trace

from branchpoint.agents.host import AgentRuntime
from branchpoint.agents.teams import TeamSpec
from branchpoint.model import Step, Task
from branchpoint.orchestrator.graph import RunContext, build_graph, start_state
from branchpoint.orchestrator.messages import InMemoryMessageStore
from branchpoint.settings import Settings


def run_in_process(
    team: TeamSpec, task: Task, model: str = "team", max_steps: int = 20
) -> tuple[dict[str, Any], list[Step]]:
    """The final state and the steps of one run of `team` on `task`."""
    messages = InMemoryMessageStore()
    runtime = AgentRuntime(Settings(), fetch=messages.link)  # transcripts arrive by reference
    ctx = RunContext(
        run_id="run-inprocess",
        team=team,
        task=task,
        seed=0,
        faults=(),
        messages=messages,
        tracer=trace.NoOpTracer(),
        run_span=trace.INVALID_SPAN,
        call_host=lambda request: asyncio.run(runtime.run_step(request)),
        max_steps=max_steps,
    )
    graph = build_graph(team, InMemorySaver())
    config = {"configurable": {"thread_id": ctx.run_id}}
    final = graph.invoke(start_state(ctx, model), config, context=ctx, durability="sync")
    return dict(final), ctx.steps
