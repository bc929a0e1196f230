"""Synthetic spans with the shapes the orchestrator emits: run, step, chat and tool."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, set_span_in_context

from branchpoint.telemetry import attributes as A

TASK = {"task_id": "t1", "question": "What is 2+3?", "answer": "5", "source": "test"}


def run_attributes(run_id: str, **extra: Any) -> dict[str, Any]:
    """Attributes of a run span."""
    attrs: dict[str, Any] = {
        A.KIND: "run",
        A.OPERATION: "invoke_workflow",
        A.RUN_ID: run_id,
        A.TEAM: "math",
        A.TASK_ID: TASK["task_id"],
        A.TASK: json.dumps(TASK),
        A.REQUEST_MODEL: "sim",
        A.SEED: 7,
        A.STATUS: "failed",
        A.SUCCESS: False,
        A.FINAL_ANSWER: "6",
        A.THREAD_ID: f"thread-{run_id}",
        A.FAULTS: json.dumps([{"agent": "Solver", "step": 1, "kind": "wrong_operand"}]),
        A.INPUT_TOKENS: 30,
        A.OUTPUT_TOKENS: 12,
    }
    attrs.update(extra)
    return attrs


def step_attributes(run_id: str, step: int, agent: str, content: str) -> dict[str, Any]:
    """Attributes of a step span."""
    return {
        A.KIND: "step",
        A.OPERATION: "invoke_agent",
        A.RUN_ID: run_id,
        A.STEP: step,
        A.AGENT_NAME: agent,
        A.STEP_KIND: "final" if agent == "Verifier" else "message",
        A.CONTENT: content,
        A.CHECKPOINT_ID: f"ckpt-{step}",
        A.INTERVENED: False,
        A.NODE_ID: "node-a",
        A.INPUT_TOKENS: 10,
        A.OUTPUT_TOKENS: 4,
    }


def chat_attributes(
    run_id: str, step: int, agent: str, prompt: str, completion: str
) -> dict[str, Any]:
    """Attributes of a chat (LLM call) span."""
    return {
        A.KIND: "chat",
        A.OPERATION: "chat",
        A.RUN_ID: run_id,
        A.STEP: step,
        A.AGENT_NAME: agent,
        A.REQUEST_MODEL: "sim",
        A.INPUT_TOKENS: 10,
        A.OUTPUT_TOKENS: 4,
        A.PROMPT: prompt,
        A.COMPLETION: A.cap(completion),
        A.REQUEST_HASH: f"h-{run_id}-{step}",
        A.CACHED: False,
        A.NODE_ID: "node-a",
        A.OI_KIND: "LLM",
        A.OI_INPUT: prompt,
        A.OI_OUTPUT: completion,
        A.OI_MODEL: "sim",
    }


def tool_attributes(run_id: str, step: int, tool: str, ok: bool) -> dict[str, Any]:
    """Attributes of a tool span."""
    return {
        A.KIND: "tool",
        A.OPERATION: "execute_tool",
        A.RUN_ID: run_id,
        A.STEP: step,
        A.TOOL_NAME: tool,
        A.TOOL_INPUT: "2+3",
        A.TOOL_OUTPUT: "5" if ok else "error",
        A.TOOL_OK: ok,
        A.NODE_ID: "node-a",
    }


AGENTS = ("Planner", "Solver", "Verifier")


def emit_run(provider: TracerProvider, run_id: str, **run_extra: Any) -> int:
    """Emit one run with three steps, each with a chat span, and a tool call in step 1.

    Returns the number of spans made.
    """
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span(
        "branchpoint.run", attributes=run_attributes(run_id, **run_extra)
    ) as run:
        made = 1
        for step, agent in enumerate(AGENTS):
            made += emit_step(provider, run, run_id, step, agent)
    return made


def emit_step(provider: TracerProvider, run: Span, run_id: str, step: int, agent: str) -> int:
    """One step span with its chat span (and a tool span at step 1) under `run`."""
    tracer = provider.get_tracer("tests")
    content = f"[{agent}] answer is {step + 4}"
    context: Context = set_span_in_context(run)
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        context=context,
        attributes=step_attributes(run_id, step, agent, content),
    ):
        with tracer.start_as_current_span(
            "chat sim", attributes=chat_attributes(run_id, step, agent, f"prompt {step}", content)
        ):
            pass
        if step == 1:
            with tracer.start_as_current_span(
                "execute_tool calculator",
                attributes=tool_attributes(run_id, step, "calculator", True),
            ):
                pass
            return 3
    return 2


BATCH = 200


def batch(k: int) -> list[dict[str, object]]:
    """Batch k of a deterministic span stream (the same ids every time it is made)."""
    return [
        {
            "span_id": f"{k:08x}{i:08x}",
            "trace_id": f"{k:032x}",
            "parent_span_id": f"{k:08x}{0:08x}" if i else None,
            "name": "invoke_agent Solver" if i else "branchpoint.run",
            "kind": "step" if i else "run",
            "run_id": f"run-{k}",
            "step": i,
            "attributes": json.dumps(
                {"branchpoint.run_id": f"run-{k}", "branchpoint.content": "x" * 300}
            ),
        }
        for i in range(BATCH)
    ]
