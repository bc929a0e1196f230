"""AgentHost: the Ray actor that runs one agent turn with an autogen-agentchat agent.

A host keeps no conversation between turns: every `StepRequest` carries the transcript, so any
turn can run on any host on any node. LLM calls are recorded (request hash → response) and traced
as `chat` spans that are children of the driver's step span (W3C traceparent in the request).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import TextMessage
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from branchpoint.agents.backends import make_chat_client, parse_model_spec
from branchpoint.agents.recording import (
    MemoryRecordStore,
    RecordingClient,
    RecordStore,
    TraceRecordStore,
)
from branchpoint.agents.sandbox import extract_code_blocks, run_python
from branchpoint.agents.sim import SIM_VERSION, SimChatCompletionClient, SimContext
from branchpoint.agents.teams import get_team
from branchpoint.model import StepRequest, StepResult, ToolCall
from branchpoint.settings import Settings
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.tracing import extract_context

MAX_TOOL_ROUNDS = 2
MAX_STEP_CHARS = 1500


def sampling_seed(seed: int, sample: int) -> int:
    """The model seed for one sample of a run: the original run is sample 0."""
    return int(hashlib.sha256(f"{seed}:{sample}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def node_id() -> str:
    """The Ray node this code runs on (or `local` outside Ray)."""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def sim_spec(model: str) -> float | None:
    """Latency in seconds when `model` names the sim backend (`sim` or `sim:0.5`), else None."""
    if model == "sim":
        return 0.0
    if model.startswith("sim:"):
        return float(model.split(":", 1)[1])
    return None


class TracedClient(RecordingClient):
    """A recording client that also emits one `chat` span per call and injects sampling args."""

    def __init__(
        self,
        *args: Any,
        tracer: trace.Tracer,
        span_attrs: Mapping[str, Any],
        sampling: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracer = tracer
        self.span_attrs = dict(span_attrs)
        self.sampling = dict(sampling)
        self.calls = 0

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        """Record/replay the call inside a `chat` span carrying GenAI and OpenInference fields."""
        prompt = "\n".join(
            f"{getattr(m, 'source', m.type)}: {getattr(m, 'content', '')}" for m in messages
        )
        with self.tracer.start_as_current_span(f"chat {self.model}") as span:
            span.set_attributes(
                {
                    **self.span_attrs,
                    A.KIND: "chat",
                    A.OPERATION: "chat",
                    A.REQUEST_MODEL: self.model,
                    A.OI_KIND: "LLM",
                    A.OI_MODEL: self.model,
                    A.PROMPT: A.cap(prompt),
                    A.OI_INPUT: A.cap(prompt),
                }
            )
            kwargs["extra_create_args"] = {**self.sampling, **kwargs.get("extra_create_args", {})}
            result = await super().create(messages, **kwargs)
            text = str(result.content)
            span.set_attributes(
                {
                    A.COMPLETION: A.cap(text),
                    A.OI_OUTPUT: A.cap(text),
                    A.INPUT_TOKENS: result.usage.prompt_tokens,
                    A.OUTPUT_TOKENS: result.usage.completion_tokens,
                    A.REQUEST_HASH: self.last_hash or "",
                    A.CACHED: self.last_cached,
                }
            )
        self.calls += 1
        return result


def request_messages(req: StepRequest) -> list[TextMessage]:
    """The conversation an agent sees: the task, the current plan, recent steps, any directive."""
    files = f"\nWorkspace files: {', '.join(sorted(req.task.files))}" if req.task.files else ""
    messages = [TextMessage(source="user", content=f"Task: {req.task.question}{files}")]
    if req.plan and req.agent not in ("Planner",):
        messages.append(TextMessage(source="user", content=f"Current plan:\n{req.plan}"))
    for step in req.transcript[-req.max_context_steps :]:
        messages.append(
            TextMessage(source=step.agent, content=step.content[:MAX_STEP_CHARS] or "(empty)")
        )
    if req.directive:
        messages.append(
            TextMessage(source="user", content=f"Instruction for {req.agent}: {req.directive}")
        )
    return messages


class AgentRuntime:
    """Runs agent turns; the Ray actor `AgentHost` is this class with `num_cpus=0`."""

    def __init__(
        self, settings: Settings, store: Any | None = None, provider: TracerProvider | None = None
    ) -> None:
        self.settings = settings
        self.records: RecordStore = (
            TraceRecordStore(store) if store is not None else MemoryRecordStore()
        )
        self.provider = provider
        self.tracer = provider.get_tracer("branchpoint.agents") if provider else trace.NoOpTracer()
        self._clients: dict[str, ChatCompletionClient] = {}
        self._model_lock = asyncio.Lock()

    def _inner_client(self, req: StepRequest) -> ChatCompletionClient | None:
        """The model client for a request (None in replay mode: no model is ever loaded)."""
        latency = sim_spec(req.model)
        if latency is not None:
            ctx = SimContext(
                task=req.task,
                agent=req.agent,
                step=req.step,
                faults=req.faults,
                seed=req.seed,
                sample=req.sample,
                transcript=req.transcript,
                plan=req.plan,
                directive=req.directive,
                latency_s=latency,
            )
            return SimChatCompletionClient(ctx)
        if req.record_mode == "replay":
            return None
        if req.model not in self._clients:
            self._clients[req.model] = make_chat_client(parse_model_spec(req.model), self.settings)
        return self._clients[req.model]

    async def run_step(self, req: StepRequest) -> StepResult:
        """Run one agent turn and return its message, usage and tool calls."""
        started = time.perf_counter()
        node = node_id()
        attrs = {A.RUN_ID: req.run_id, A.STEP: req.step, A.AGENT_NAME: req.agent, A.NODE_ID: node}
        tools: list[ToolCall] = []
        token = otel_context.attach(
            extract_context(req.trace_carrier)
        )  # spans below: children of the step
        try:
            spec = get_team(req.team).agent(req.agent)
            client = None if spec.prompt is None else self._client(req, attrs)
            if client is None:
                content = self._tool_turn(req, attrs, tools)
            else:
                content = await self._llm_turn(req, client, attrs, tools)
        finally:
            otel_context.detach(token)
        usage = client.total_usage() if client else None
        return StepResult(
            content=content,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            llm_calls=client.calls if client else 0,
            tool_calls=tuple(tools),
            seconds=time.perf_counter() - started,
            node_id=node,
        )

    def _client(self, req: StepRequest, attrs: Mapping[str, Any]) -> TracedClient:
        inner = self._inner_client(req)
        hash_extra: dict[str, Any] = {}
        if sim_spec(req.model) is not None:  # the sim's answer depends on more than the messages
            hash_extra = {
                "sim": [
                    SIM_VERSION,
                    req.step,
                    req.sample,
                    req.seed,
                    [f.model_dump() for f in req.faults],
                    req.plan,
                    req.directive,
                    [s.content for s in req.transcript],
                ]
            }
        sampling = {
            "seed": sampling_seed(req.seed, req.sample),
            "temperature": 0.7,
            "max_tokens": 384,
        }
        return TracedClient(
            inner,
            self.records,
            req.model,
            req.record_mode,
            hash_extra,
            tracer=self.tracer,
            span_attrs=attrs,
            sampling=sampling,
        )

    async def _llm_turn(
        self,
        req: StepRequest,
        client: TracedClient,
        attrs: Mapping[str, Any],
        tools: list[ToolCall],
    ) -> str:
        system = req.system_prompt
        agent = AssistantAgent(name=req.agent, model_client=client, system_message=system)
        serialise = req.model.startswith("local")
        messages = request_messages(req)
        parts: list[str] = []
        for _ in range(MAX_TOOL_ROUNDS):
            if serialise:
                async with self._model_lock:
                    response = await agent.on_messages(messages, CancellationToken())
            else:
                response = await agent.on_messages(messages, CancellationToken())
            reply = str(getattr(response.chat_message, "content", ""))
            parts.append(reply)
            blocks = extract_code_blocks(reply) if "python" in req.tools else []
            if not blocks:
                break
            call = self._run_tool("python", blocks[-1], req, attrs)
            tools.append(call)
            output = f"Output of your code:\n{call.output}"
            parts.append(output)
            messages = [TextMessage(source="python", content=output + "\nNow give the result.")]
        return "\n\n".join(parts)

    def _tool_turn(self, req: StepRequest, attrs: Mapping[str, Any], tools: list[ToolCall]) -> str:
        """Turns of agents that call no model: the terminal runs code, the file surfer reads files."""
        if req.agent == "FileSurfer":
            call = self._run_tool("read_file", " ".join(sorted(req.task.files)), req, attrs)
            tools.append(call)
            return call.output
        code = next(
            (b for s in reversed(req.transcript) for b in reversed(extract_code_blocks(s.content))),
            None,
        )
        if code is None:
            return "No code block to run. The Coder must write one in a ```python fence."
        call = self._run_tool("python", code, req, attrs)
        tools.append(call)
        return f"Exit {'ok' if call.ok else 'error'}. Output:\n{call.output}"

    def _run_tool(
        self, tool: str, text: str, req: StepRequest, attrs: Mapping[str, Any]
    ) -> ToolCall:
        with self.tracer.start_as_current_span(f"execute_tool {tool}") as span:
            span.set_attributes(
                {
                    **attrs,
                    A.KIND: "tool",
                    A.OPERATION: "execute_tool",
                    A.TOOL_NAME: tool,
                    A.OI_KIND: "TOOL",
                    A.TOOL_INPUT: A.cap(text),
                    A.OI_INPUT: A.cap(text),
                }
            )
            if tool == "read_file":
                body = "\n\n".join(
                    f"== {name} ==\n{req.task.files[name]}" for name in sorted(req.task.files)
                )
                call = ToolCall(
                    tool=tool, input=text, output=body or "The workspace is empty.", ok=True
                )
            else:
                call = run_python(text, files=dict(req.task.files))
            span.set_attributes(
                {
                    A.TOOL_OUTPUT: A.cap(call.output),
                    A.OI_OUTPUT: A.cap(call.output),
                    A.TOOL_OK: call.ok,
                }
            )
            return call


@ray.remote(num_cpus=0)
class AgentHost:
    """Ray actor hosting agent turns; spans and LLM records go to the trace sink actor."""

    def __init__(self, settings: Settings, sink: Any | None) -> None:
        from branchpoint.telemetry.sink import SinkClient
        from branchpoint.telemetry.tracing import setup_tracing

        store = SinkClient(sink) if sink is not None else None
        provider = None
        if store is not None and settings.tracing:
            provider = setup_tracing(store, "branchpoint-agent-host")
        self.runtime = AgentRuntime(settings, store, provider)

    async def run_step(self, req: StepRequest) -> StepResult:
        """Run one agent turn."""
        return await self.runtime.run_step(req)

    async def flush(self) -> bool:
        """Export every pending span (call before shutdown), off the event loop: the export is a
        blocking round trip to the sink."""
        if self.runtime.provider is not None:
            await asyncio.to_thread(self.runtime.provider.force_flush)
        return True
