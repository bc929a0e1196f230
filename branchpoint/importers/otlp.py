"""OTLP JSON trace files as runs: agent, LLM and tool spans become steps, LLM calls and tool calls.

Reads what OpenTelemetry tools write: the OTLP/JSON `ExportTraceServiceRequest` (one document, or
one per line as the collector's file exporter writes it; camelCase or snake_case keys; ids in
hex or base64), and Phoenix's span exports (`/v1/projects/P/spans/otlpv1`, and its native
`/v1/projects/P/spans` shape). Spans may follow the GenAI conventions (`gen_ai.operation.name`
= invoke_agent / chat / execute_tool) or OpenInference (`openinference.span.kind` = AGENT / LLM /
TOOL); branchpoint's own spans keep their run ids, steps and tasks, so an exported run imports
back with the same steps.

One trace is one run (a branchpoint trace may hold several runs: they are split by run id).
Steps are the agent spans in start order; a trace without agent spans takes its LLM and tool
spans as steps. A foreign run's status is `failed` when a span has status ERROR, else
`succeeded`: a trace does not say whether its task was solved.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, get_args

from pydantic import ValidationError

from branchpoint.importers import SkippedFile
from branchpoint.importers.logs import ForeignCall, ForeignLog
from branchpoint.model import Run, RunStatus, Step, StepKind, Task, ToolCall
from branchpoint.telemetry import attributes as A

AGENT, LLM, TOOL = "agent", "llm", "tool"
_GENAI_OPS = {"invoke_agent": AGENT, "create_agent": AGENT, "chat": LLM, "text_completion": LLM,
              "generate_content": LLM, "execute_tool": TOOL}  # fmt: skip
_OI_KINDS = {"AGENT": AGENT, "LLM": LLM, "TOOL": TOOL}
_OURS = {"step": AGENT, "chat": LLM, "tool": TOOL}
_STEP_KINDS = get_args(StepKind)
_MAX_NANOS = 2**64  # OTLP times are fixed64 nanoseconds since 1970


@dataclass
class OtlpSpan:
    """One span, normalised from any of the accepted JSON shapes."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool = False
    children: list[OtlpSpan] = field(default_factory=list)

    @property
    def role(self) -> str | None:
        """agent, llm or tool by branchpoint's, the GenAI or OpenInference attributes; else None."""
        attrs = self.attributes
        return (
            _OURS.get(str(attrs.get(A.KIND)))
            or _GENAI_OPS.get(str(attrs.get(A.OPERATION)))
            or _OI_KINDS.get(str(attrs.get(A.OI_KIND)).upper())
        )

    def first(self, *keys: str) -> Any:
        """The first of `keys` present in the attributes (None when none is)."""
        return next(
            (self.attributes[k] for k in keys if self.attributes.get(k) not in (None, "")), None
        )

    def integer(self, *keys: str, required: bool = False) -> int:
        """The first of `keys` present, as an integer (0 when none is, unless `required`);
        ValueError naming the span and the key when it is not an integer."""
        value = self.first(*keys)
        if value is None and not required:
            return 0
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            shown = "missing" if value is None else f"{value!r:.60} is not an integer"
            raise ValueError(f"span {self.span_id!r}: {keys[0]} {shown}") from None

    def text(self, *keys: str) -> str:
        value = self.first(*keys)
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / 1e9, UTC).replace(tzinfo=None)

    @property
    def seconds(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


def _hex_id(value: Any, digits: int) -> str | None:
    """An id as lowercase hex: hex as the OTLP/JSON spec says, or base64 as protobuf's JSON does."""
    if not value:
        return None
    text = str(value)
    if len(text) == digits:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    try:
        return base64.b64decode(text, validate=True).hex() or None
    except (binascii.Error, ValueError):
        return text.lower()


def any_value(value: Any) -> Any:
    """A plain value from an OTLP AnyValue (`{"stringValue": …}`, snake_case too)."""
    if not isinstance(value, dict):
        return value
    for key, item in value.items():
        name = key.replace("_", "").lower()
        if item is None:  # Phoenix writes every AnyValue field, the unused ones as null
            continue
        if name == "intvalue":
            return _number(int, item, key)
        if name == "doublevalue":
            return _number(float, item, key)
        if name == "arrayvalue":
            return [any_value(v) for v in _list(_object(item, key).get("values"), key)]
        if name == "kvlistvalue":
            return _key_values(_list(_object(item, key).get("values"), key))
        if name in ("stringvalue", "boolvalue", "bytesvalue"):
            return item
    return None


def _number(kind: type[int | float], value: Any, what: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} {value!r:.60} is not a number") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} {value!r:.60} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    """A JSON list (None as empty); ValueError naming `what` for anything else."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{what} {value!r:.60} is not a list")
    return value


def _key_values(items: list[Any]) -> dict[str, Any]:
    """OTLP's `[{"key": …, "value": AnyValue}]` as a dict."""
    out: dict[str, Any] = {}
    for kv in items:
        if not isinstance(kv, dict) or "key" not in kv:
            raise ValueError(f"attribute {kv!r:.60} is not a {{key, value}} object")
        try:
            out[str(kv["key"])] = any_value(kv.get("value"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"attribute {kv['key']!r:.60}: {exc}") from None
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (Phoenix's native attributes) as dotted keys, as OTLP carries them."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, list):
        return _key_values(raw)
    return _flatten(raw) if isinstance(raw, dict) else {}


def _g(data: dict[str, Any], *names: str) -> Any:
    return next((data[n] for n in names if n in data), None)


def _nanos(data: dict[str, Any], unix: tuple[str, ...], iso: str) -> int:
    """A span time in nanoseconds since 1970, from its unix-nano field or its ISO text."""
    value = _g(data, *unix)
    text = data.get(iso)
    try:
        if value is not None:
            nanos = int(value)
        elif not text:
            return 0
        else:
            moment = datetime.fromisoformat(str(text))
            nanos = int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1e9)
    except (TypeError, ValueError, OverflowError):
        nanos = -1
    if not 0 <= nanos < _MAX_NANOS:
        shown = f"{unix[0]} {value!r:.60}" if value is not None else f"{iso} {text!r:.60}"
        raise ValueError(f"{shown} is not a time from 1970 to 2554 (nanoseconds or ISO 8601)")
    return nanos


def parse_span(data: dict[str, Any], resource: dict[str, Any] | None = None) -> OtlpSpan:
    """One span of OTLP/JSON or of Phoenix's native export; ValueError naming the span and
    the field when a field has the wrong shape."""
    data = _object(data, "span")
    context = _object(data.get("context") or {}, "span context")
    span_id = _hex_id(_g(data, "spanId", "span_id") or context.get("span_id"), 16) or ""
    try:
        status = _object(data.get("status") or {}, "status")
        code = str(_g(status, "code") or data.get("status_code") or "")
        return OtlpSpan(
            trace_id=_hex_id(_g(data, "traceId", "trace_id") or context.get("trace_id"), 32) or "",
            span_id=span_id,
            parent_id=_hex_id(_g(data, "parentSpanId", "parent_span_id", "parent_id"), 16),
            name=str(data.get("name") or ""),
            start_ns=_nanos(data, ("startTimeUnixNano", "start_time_unix_nano"), "start_time"),
            end_ns=_nanos(data, ("endTimeUnixNano", "end_time_unix_nano"), "end_time"),
            attributes={**(resource or {}), **_attributes(data.get("attributes"))},
            error=code in ("2", "STATUS_CODE_ERROR", "ERROR"),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"span {span_id or data.get('name')!r}: {exc}") from None


def spans_of(document: Any) -> Iterator[OtlpSpan]:
    """Every span of one JSON document (a request, or a Phoenix `{"data": [...]}` page)."""
    if not isinstance(document, dict):
        raise SkippedFile("JSON, but not an OTLP trace export (no resourceSpans or data)")
    if isinstance(document.get("data"), list):
        for span in document["data"]:
            yield parse_span(span)
        return
    resource_spans = _g(document, "resourceSpans", "resource_spans")
    if not isinstance(resource_spans, list):
        raise SkippedFile("JSON, but not an OTLP trace export (no resourceSpans or data)")
    for rs in resource_spans:
        rs = _object(rs, "resourceSpans entry")
        resource_attrs = _object(rs.get("resource") or {}, "resource").get("attributes")
        resource = {k: v for k, v in _attributes(resource_attrs).items() if k == "service.name"}
        for ss in _list(_g(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans"),
                        "scopeSpans"):  # fmt: skip
            for span in _list(_object(ss, "scopeSpans entry").get("spans"), "spans"):
                yield parse_span(span, resource)


def read_documents(path: Path) -> list[Any]:
    """The JSON documents of a file: one document, or one per line (JSON lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkippedFile(f"not readable as text ({str(exc)[:80]})") from None
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise SkippedFile("not JSON (nested too deeply to read)") from None
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise SkippedFile(f"not JSON or JSON lines ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise SkippedFile("not JSON lines (a line is nested too deeply to read)") from None


def read_file(path: Path) -> list[ForeignLog]:
    """The runs in one OTLP JSON file (SkippedFile when it is JSON of another kind)."""
    spans = [span for document in read_documents(path) for span in spans_of(document)]
    if not spans:
        raise SkippedFile("an OTLP export without spans")
    return runs_of(spans, str(path))


def runs_of(spans: list[OtlpSpan], source: str) -> list[ForeignLog]:
    """The runs of a set of spans: by branchpoint run id where spans have one, else by trace."""
    groups: dict[str, list[OtlpSpan]] = defaultdict(list)
    for span in spans:
        run_id = span.attributes.get(A.RUN_ID)
        groups[str(run_id) if run_id else f"otlp-{span.trace_id[:16]}"].append(span)
    return [run_of(run_id, group, source) for run_id, group in sorted(groups.items())]


def _check_acyclic(by_id: dict[str, OtlpSpan]) -> None:
    """ValueError naming a span whose parent chain leads back to itself."""
    done: set[str] = set()
    for start in by_id:
        chain: set[str] = set()
        node: str | None = start
        while node is not None and node in by_id and node not in done:
            if node in chain:
                raise ValueError(f"span {node!r}: its parent chain loops back to it")
            chain.add(node)
            node = by_id[node].parent_id
        done.update(chain)


def _link(spans: list[OtlpSpan]) -> list[OtlpSpan]:
    """Children attached to parents; the roots (no parent among `spans`), in start order."""
    by_id = {s.span_id: s for s in spans}
    _check_acyclic(by_id)
    for span in spans:
        span.children = []
    roots: list[OtlpSpan] = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        parent = by_id.get(span.parent_id) if span.parent_id else None
        (parent.children if parent is not None else roots).append(span)
    return roots


def _under(span: OtlpSpan) -> Iterator[OtlpSpan]:
    """The spans below `span`, depth first (a loop, so a deep trace needs no deep stack)."""
    stack = list(reversed(span.children))
    while stack:
        child = stack.pop()
        yield child
        stack.extend(reversed(child.children))


def _agent_name(span: OtlpSpan) -> str:
    name = span.text(A.AGENT_NAME, "agent.name", "gen_ai.agent.id")
    return name or span.name.removeprefix("invoke_agent ").strip() or "agent"


def _llm_call(span: OtlpSpan, step: int, agent: str) -> ForeignCall:
    prompt = span.text(
        A.PROMPT, A.OI_INPUT, "gen_ai.input.messages", "llm.input_messages.0.message.content"
    )
    completion = span.text(A.COMPLETION, A.OI_OUTPUT, "gen_ai.output.messages",
                           "llm.output_messages.0.message.content")  # fmt: skip
    return ForeignCall(
        step=step,
        agent=agent,
        model=span.text(A.REQUEST_MODEL, "gen_ai.response.model", A.OI_MODEL) or "unknown",
        prompt=prompt,
        completion=completion,
        input_tokens=span.integer(A.INPUT_TOKENS, "llm.token_count.prompt"),
        output_tokens=span.integer(A.OUTPUT_TOKENS, "llm.token_count.completion"),
        started_at=span.started,
        seconds=span.seconds,
    )


def _tool_call(span: OtlpSpan) -> ToolCall:
    return ToolCall(
        tool=span.text(A.TOOL_NAME, "tool.name") or span.name.removeprefix("execute_tool ").strip(),
        input=span.text(A.TOOL_INPUT, A.OI_INPUT, "gen_ai.tool.call.arguments"),
        output=span.text(A.TOOL_OUTPUT, A.OI_OUTPUT, "gen_ai.tool.call.result"),
        ok=not span.error if span.first(A.TOOL_OK) is None else bool(span.first(A.TOOL_OK)),
        seconds=span.seconds,
    )


def _step_kind(span: OtlpSpan) -> StepKind:
    kind = span.attributes.get(A.STEP_KIND)
    if kind in _STEP_KINDS:
        return cast(StepKind, kind)
    return "tool_result" if span.role == TOOL else "message"


def _step_agent(span: OtlpSpan) -> str:
    if span.role == AGENT:
        return _agent_name(span)
    fallback = span.text(A.REQUEST_MODEL, A.OI_MODEL) if span.role == LLM else "tool"
    return span.text(A.AGENT_NAME) or fallback or span.name


def step_of(span: OtlpSpan, run_id: str, index: int) -> tuple[Step, list[ForeignCall]]:
    """One step from an agent span (with the LLM and tool spans under it), or from a lone LLM or
    tool span; and the step's LLM calls."""
    agent = _step_agent(span)
    inner = [s for s in _under(span) if s.role in (LLM, TOOL)] if span.role == AGENT else [span]
    llm = [_llm_call(s, index, agent) for s in inner if s.role == LLM]
    tools = tuple(_tool_call(s) for s in inner if s.role == TOOL)
    content = span.text(A.CONTENT, A.OI_OUTPUT, A.COMPLETION, "gen_ai.output.messages") or (
        llm[-1].completion if llm else "\n".join(t.output for t in tools)
    )
    step = Step(
        run_id=run_id,
        index=index,
        agent=agent,
        kind=_step_kind(span),
        content=content,
        seconds=span.seconds,
        tool_calls=tools,
        input_tokens=sum(c.input_tokens for c in llm),
        output_tokens=sum(c.output_tokens for c in llm),
        llm_calls=len(llm),
    )
    return step, llm


def run_of(run_id: str, spans: list[OtlpSpan], source: str) -> ForeignLog:
    """One run from its spans (see the module docstring for the mapping)."""
    roots = _link(spans)
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    step_spans = [s for s in ordered if s.role == AGENT] or [
        s for s in ordered if s.role in (LLM, TOOL)
    ]
    own_steps = any(A.STEP in s.attributes for s in step_spans)
    steps, calls = [], []
    for position, span in enumerate(step_spans):
        index = span.integer(A.STEP, required=True) if own_steps else position
        step, llm = step_of(span, run_id, index)
        steps.append(step)
        calls += llm
    run_span = next(
        (s for s in spans if s.attributes.get(A.KIND) == "run"), roots[0] if roots else ordered[0]
    )
    return ForeignLog(
        run=_run(run_id, run_span, spans, steps, source),
        steps=tuple(steps),
        llm_calls=tuple(calls),
        started_at=min(s.started for s in spans),
        step_starts=tuple(s.started for s in step_spans),
    )


def _task(run_id: str, span: OtlpSpan, steps: list[Step]) -> Task:
    raw = span.attributes.get(A.TASK)
    if raw:
        try:
            return Task.model_validate_json(raw)
        except ValidationError:
            pass
    question = span.text(A.OI_INPUT, A.PROMPT, "gen_ai.input.messages") or (
        steps[0].content if steps else ""
    )
    return Task(task_id=run_id, question=question, source="otlp")


def _run(run_id: str, span: OtlpSpan, spans: list[OtlpSpan], steps: list[Step], source: str) -> Run:
    attrs = span.attributes
    stated = attrs.get(A.STATUS)
    status: RunStatus = "failed" if any(s.error for s in spans) else "succeeded"
    if stated in ("succeeded", "failed", "errored"):
        status = stated
    fork_step = span.integer(A.FORK_STEP) if span.first(A.FORK_STEP) is not None else None
    return Run(
        run_id=run_id,
        task=_task(run_id, span, steps),
        team=str(attrs.get(A.TEAM) or attrs.get("service.name") or "otlp"),
        model=str(attrs.get(A.REQUEST_MODEL) or "unknown"),
        seed=span.integer(A.SEED),
        status=status,
        success=status == "succeeded",
        final_answer=attrs.get(A.FINAL_ANSWER) or None,
        parent_run_id=attrs.get(A.PARENT_RUN_ID) or None,
        fork_step=fork_step,
        n_steps=len(steps),
        source=f"otlp:{source}",
    )
