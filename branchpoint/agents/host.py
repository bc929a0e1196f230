"""AgentHost: the Ray actor that runs one agent turn with an autogen-agentchat agent.

A host keeps no conversation between turns and knows no team: every `StepRequest` carries the
transcript and what the agent is (prompt, tools, model, the selector), so any turn of any team,
built-in or the user's, can run on any host on any node. LLM calls are recorded (request hash →
response) and traced as `chat` spans, tool calls as `execute_tool` spans, both children of the
driver's step span (W3C traceparent in the request).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import TextMessage
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from branchpoint.agents.backends import make_chat_client, parse_model_spec, redact_model
from branchpoint.agents.function_tools import component_id, load_client, load_function_tool
from branchpoint.agents.recording import (
    MemoryRecordStore,
    RecordingClient,
    RecordStore,
    TraceRecordStore,
)
from branchpoint.agents.sandbox import (
    CLOSING_FENCE,
    close_open_fence,
    extract_code_blocks,
    newest_code_block,
    run_python,
)
from branchpoint.agents.selector import select_next_speaker
from branchpoint.agents.sim import (
    SIM_VERSION,
    SimChatCompletionClient,
    SimContext,
    transcript_digest,
)
from branchpoint.agents.tool_turns import find_tool_turn
from branchpoint.agents.transcripts import TranscriptCache
from branchpoint.errors import BranchpointError
from branchpoint.model import MessageLink, StepRequest, StepResult, ToolCall
from branchpoint.settings import Settings
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.tracing import extract_context

MAX_TOOL_ROUNDS = 2
MAX_OWN_CLIENTS = 256
MAX_STEP_CHARS = 1500


def sampling_seed(seed: int, sample: int) -> int:
    """The model seed for one sample of a run: the original run is sample 0."""
    return int(hashlib.sha256(f"{seed}:{sample}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def node_id() -> str:
    """The Ray node this code runs on (or `local` outside Ray)."""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def sim_spec(model: str) -> float | None:
    """Latency in seconds when `model` names the sim backend (`sim` or `sim:0.5`), else None."""
    if model != "sim" and not model.startswith("sim:"):
        return None
    return parse_model_spec(model).latency_s  # the one parser: `sim:abc` is a ModelSpecError


class TracedClient(RecordingClient):
    """A recording client that also emits one `chat` span per call and injects sampling args."""

    def __init__(
        self,
        *args: Any,
        tracer: trace.Tracer,
        span_attrs: Mapping[str, Any],
        sampling: Mapping[str, Any],
        function_calling: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracer = tracer
        self.span_attrs = dict(span_attrs)
        self.sampling = dict(sampling)
        self.function_calling = function_calling
        self.calls = 0

    @property
    def model_info(self) -> ModelInfo:
        """The model's info; an agent with function tools calls them (also when replaying)."""
        info = super().model_info
        return ModelInfo(**{**info, "function_calling": True}) if self.function_calling else info

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        """Record/replay the call inside a `chat` span carrying GenAI and OpenInference fields."""
        prompt = "\n".join(
            f"{getattr(m, 'source', m.type)}: {getattr(m, 'content', '')}" for m in messages
        )
        with self.tracer.start_as_current_span(f"chat {self.model}") as span:
            span.set_attributes({**self.span_attrs, **A.chat_request(self.model, prompt)})
            kwargs["extra_create_args"] = {**self.sampling, **kwargs.get("extra_create_args", {})}
            result = await super().create(messages, **kwargs)
            text = str(result.content)
            span.set_attributes(
                {
                    **A.chat_reply(
                        text, result.usage.prompt_tokens, result.usage.completion_tokens
                    ),
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
    if req.plan:
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
        self,
        settings: Settings,
        store: Any | None = None,
        provider: TracerProvider | None = None,
        fetch: Callable[[str], MessageLink] | None = None,
        write_behind: bool = False,
    ) -> None:
        self.settings = settings
        # Transcripts arrive by reference; `fetch` reads the driver's store when in its process.
        self.transcripts = TranscriptCache(fetch=fetch)
        self.records: RecordStore = (
            TraceRecordStore(store, write_behind) if store is not None else MemoryRecordStore()
        )
        self.provider = provider
        self.tracer = provider.get_tracer("branchpoint.agents") if provider else trace.NoOpTracer()
        self._clients: dict[str, ChatCompletionClient] = {}
        # Clients built from a team's autogen component, per run and agent: a scripted client
        # (autogen's ReplayChatCompletionClient) keeps its place in the script across turns.
        self._own_clients: dict[tuple[str, str, str], ChatCompletionClient] = {}
        self._model_lock = asyncio.Lock()

    def _own_client(
        self, req: StepRequest, owner: str, component: Mapping[str, Any]
    ) -> ChatCompletionClient:
        key = (req.run_id, owner, component_id(component))
        if key not in self._own_clients:
            if len(self._own_clients) >= MAX_OWN_CLIENTS:  # a long sweep: drop the oldest run's
                del self._own_clients[next(iter(self._own_clients))]
            self._own_clients[key] = load_client(component)
        return self._own_clients[key]

    def _inner_client(
        self,
        req: StepRequest,
        model: str,
        component: Mapping[str, Any] | None = None,
        owner: str | None = None,
        function_calling: bool = False,
    ) -> ChatCompletionClient | None:
        """The model client for a request (None in replay mode: no model is ever loaded)."""
        if component is not None:
            return (
                None
                if req.record_mode == "replay"
                else self._own_client(req, owner or req.agent, component)
            )
        latency = sim_spec(model)
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
        if model == "team":
            raise BranchpointError(
                f"agent {req.agent} has no model of its own; run the team with --model"
            )
        key = f"{model}|tools" if function_calling else model
        if key not in self._clients:
            self._clients[key] = make_chat_client(
                parse_model_spec(model), self.settings, function_calling=function_calling
            )
        return self._clients[key]

    async def drain(self) -> None:
        """Wait until every LLM record written behind is stored; raise a failed write."""
        if isinstance(self.records, TraceRecordStore):
            await self.records.drain()

    async def run_step(self, req: StepRequest) -> StepResult:
        """Run one agent turn, or (`select_only`) only pick the next speaker."""
        started = time.perf_counter()
        req = self.transcripts.complete(req)
        node = node_id()
        attrs = {A.RUN_ID: req.run_id, A.STEP: req.step, A.AGENT_NAME: req.agent, A.NODE_ID: node}
        tools: list[ToolCall] = []
        clients: list[TracedClient] = []
        content, next_speaker = "", None
        token = otel_context.attach(
            extract_context(req.trace_carrier)
        )  # spans below: children of the step
        try:
            if req.select_only:
                next_speaker = await self._select(req, attrs, clients)
            else:
                content = await self._turn(req, attrs, tools, clients)
        finally:
            otel_context.detach(token)
        return StepResult(
            content=content,
            input_tokens=sum(c.total_usage().prompt_tokens for c in clients),
            output_tokens=sum(c.total_usage().completion_tokens for c in clients),
            llm_calls=sum(c.calls for c in clients),
            tool_calls=tuple(tools),
            seconds=time.perf_counter() - started,
            node_id=node,
            next_speaker=next_speaker,
        )

    async def _turn(
        self,
        req: StepRequest,
        attrs: Mapping[str, Any],
        tools: list[ToolCall],
        clients: list[TracedClient],
    ) -> str:
        if not req.calls_model:
            return self._tool_turn(req, attrs, tools)
        client = self._client(
            req,
            attrs,
            req.model,
            req.model_client,
            function_calling=bool(req.function_tools),
        )
        clients.append(client)
        if req.function_tools:
            return await self._function_tool_turn(req, client, attrs, tools)
        return await self._llm_turn(req, client, attrs, tools)

    async def _select(
        self, req: StepRequest, attrs: Mapping[str, Any], clients: list[TracedClient]
    ) -> str:
        """The selector's choice of the next speaker after the transcript."""
        selector = req.selector
        if selector is None:
            raise BranchpointError(f"team {req.team} has no selector to pick the next speaker")
        model = selector.model or req.model
        client = self._client(req, attrs, model, selector.model_client, owner="selector")
        clients.append(client)
        history = [(s.agent, s.content) for s in req.transcript]
        return await select_next_speaker(selector, req.task.question, history, client)

    def _client(
        self,
        req: StepRequest,
        attrs: Mapping[str, Any],
        model: str,
        component: Mapping[str, Any] | None = None,
        owner: str | None = None,
        function_calling: bool = False,
    ) -> TracedClient:
        inner = self._inner_client(req, model, component, owner, function_calling)
        hash_extra: dict[str, Any] = {}
        if component is not None:  # the same messages to another client are another request
            hash_extra = {"client": [owner or req.agent, component_id(component)]}
        if sim_spec(model) is not None:  # the sim's answer depends on more than the messages
            hash_extra = {
                "sim": [
                    SIM_VERSION,
                    req.step,
                    req.sample,
                    req.seed,
                    [f.model_dump() for f in req.faults],
                    req.plan,
                    req.directive,
                    transcript_digest(req.transcript),
                ]
            }
        sampling = {
            "seed": sampling_seed(req.seed, req.sample),
            "temperature": 0.7,
            "max_tokens": 384,
            **({"stop": list(req.stop)} if req.stop else {}),  # absent: old hashes still match
        }
        return TracedClient(
            inner,
            self.records,
            redact_model(model),  # an endpoint URL's credentials are never stored
            req.record_mode,
            hash_extra,
            tracer=self.tracer,
            span_attrs=attrs,
            sampling=sampling,
            function_calling=function_calling,
            lookup=sim_spec(model) is None,
        )

    async def _llm_turn(
        self,
        req: StepRequest,
        client: TracedClient,
        attrs: Mapping[str, Any],
        tools: list[ToolCall],
    ) -> str:
        agent = AssistantAgent(
            name=req.agent, model_client=client, system_message=req.system_prompt or None
        )
        messages = request_messages(req)
        parts: list[str] = []
        for _ in range(MAX_TOOL_ROUNDS):
            response = await self._ask(agent, messages, req)
            reply = str(getattr(response.chat_message, "content", ""))
            if CLOSING_FENCE in req.stop:  # the stop sequence removed the closing fence
                reply = close_open_fence(reply)
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

    async def _ask(
        self, agent: AssistantAgent, messages: list[TextMessage], req: StepRequest
    ) -> Any:
        """One `on_messages` of an autogen agent; an embedded model serves one call at a time."""
        if req.model.startswith("local"):
            async with self._model_lock:
                return await agent.on_messages(messages, CancellationToken())
        return await agent.on_messages(messages, CancellationToken())

    async def _function_tool_turn(
        self,
        req: StepRequest,
        client: TracedClient,
        attrs: Mapping[str, Any],
        tools: list[ToolCall],
    ) -> str:
        """A turn of an agent with Python function tools, run by autogen's AssistantAgent: the
        model calls tools, each call is traced, and the turn's message is what autogen returns
        (the tool results, or the model's reflection on them with `reflect_on_tool_use`)."""
        function_tools = [
            traced_tool(load_function_tool(spec), self.tracer, attrs, tools)
            for spec in req.function_tools
        ]
        agent = AssistantAgent(
            name=req.agent,
            model_client=client,
            system_message=req.system_prompt or None,
            tools=function_tools,
            reflect_on_tool_use=req.reflect_on_tool_use,
        )
        response = await self._ask(agent, request_messages(req), req)
        return str(getattr(response.chat_message, "content", ""))

    def _tool_turn(self, req: StepRequest, attrs: Mapping[str, Any], tools: list[ToolCall]) -> str:
        """Turns of agents that call no model: a registered tool turn (`tool_turns.find_tool_turn`)
        on the newest message's code, `read_file` shows the workspace files, `python` runs the
        newest code block of the transcript."""
        if find_tool_turn(req.tools) is not None:
            last = req.transcript[-1].content if req.transcript else ""
            call = self._run_tool(req.tools[0], last, req, attrs)
            tools.append(call)
            return call.output
        if "read_file" in req.tools:
            call = self._run_tool("read_file", " ".join(sorted(req.task.files)), req, attrs)
            tools.append(call)
            return call.output
        if "python" not in req.tools:
            raise BranchpointError(f"agent {req.agent} calls no model and has no tool to run")
        code = newest_code_block(req.transcript)
        if code is None:
            return "No code block to run. Write one in a ```python fence first."
        call = self._run_tool("python", code, req, attrs)
        tools.append(call)
        return f"Exit {'ok' if call.ok else 'error'}. Output:\n{call.output}"

    def _run_tool(
        self, tool: str, text: str, req: StepRequest, attrs: Mapping[str, Any]
    ) -> ToolCall:
        with self.tracer.start_as_current_span(f"execute_tool {tool}") as span:
            span.set_attributes(tool_input_attrs(attrs, tool, text))
            if tool == "read_file":
                body = "\n\n".join(
                    f"== {name} ==\n{req.task.files[name]}" for name in sorted(req.task.files)
                )
                call = ToolCall(
                    tool=tool, input=text, output=body or "The workspace is empty.", ok=True
                )
            elif (registered := find_tool_turn((tool,))) is not None:
                turn = registered[1](text, req.task)
                call = turn.call
                for name, event_attrs in turn.events:  # e.g. LDB block visits, for SQL
                    span.add_event(name, event_attrs)
            else:
                call = run_python(text, files=dict(req.task.files))
            span.set_attributes(tool_output_attrs(call.output, call.ok))
            return call


def tool_input_attrs(attrs: Mapping[str, Any], tool: str, text: str) -> dict[str, Any]:
    """An `execute_tool` span's attributes when it starts: the step's, the tool and its input."""
    text = A.cap(text)
    return {
        **attrs,
        A.KIND: "tool",
        A.OPERATION: "execute_tool",
        A.TOOL_NAME: tool,
        A.OI_KIND: "TOOL",
        A.TOOL_INPUT: text,
        A.OI_INPUT: text,
    }


def tool_output_attrs(output: str, ok: bool) -> dict[str, Any]:
    """An `execute_tool` span's attributes when the tool has answered."""
    output = A.cap(output)
    return {A.TOOL_OUTPUT: output, A.OI_OUTPUT: output, A.TOOL_OK: ok}


def traced_tool(
    tool: Any, tracer: trace.Tracer, attrs: Mapping[str, Any], calls: list[ToolCall]
) -> Any:
    """The same tool, each call inside an `execute_tool` span and appended to `calls`."""
    run_json = tool.run_json

    async def traced_run_json(args: Mapping[str, Any], *rest: Any, **kwargs: Any) -> Any:
        text = json.dumps(dict(args), sort_keys=True, default=str)
        started = time.perf_counter()
        with tracer.start_as_current_span(f"execute_tool {tool.name}") as span:
            span.set_attributes(tool_input_attrs(attrs, tool.name, text))

            def record(output: str, ok: bool) -> None:
                span.set_attributes(tool_output_attrs(output, ok))
                seconds = time.perf_counter() - started
                calls.append(
                    ToolCall(tool=tool.name, input=text, output=output, ok=ok, seconds=seconds)
                )

            try:
                result = await run_json(args, *rest, **kwargs)
            except Exception as exc:  # the user's tool failed: autogen shows the model the error
                record(f"Error: {exc}", False)
                raise
            record(tool.return_value_as_string(result), True)
            return result

    tool.run_json = traced_run_json
    return tool


@ray.remote(num_cpus=0)
class AgentHost:
    """Ray actor hosting agent turns; spans and LLM records go to the trace sink actor."""

    def __init__(self, settings: Settings, sink_actor: str | None) -> None:
        """`sink_actor`: the sink's actor name, looked up here. A handle passed in would be an
        object-store argument, which Ray cannot restore when it restarts the host (ray#53727)."""
        from branchpoint.telemetry.sink import SinkClient
        from branchpoint.telemetry.tracing import setup_tracing

        store = SinkClient(sink_actor) if sink_actor is not None else None
        provider = None
        if store is not None and settings.tracing:
            provider = setup_tracing(store, "branchpoint-agent-host")
        # A turn does not wait for the sink to store its LLM record; `flush` waits for them all.
        self.runtime = AgentRuntime(settings, store, provider, write_behind=True)

    async def run_step(self, req: StepRequest) -> StepResult:
        """Run one agent turn."""
        return await self.runtime.run_step(req)

    async def flush(self) -> bool:
        """Export every pending span (call before shutdown), off the event loop: the export is a
        blocking round trip to the sink), and store every LLM record still being written."""
        await self.runtime.drain()
        if self.runtime.provider is not None:
            await asyncio.to_thread(self.runtime.provider.force_flush)
        return True
