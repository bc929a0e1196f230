"""The LLM judge behind segmentation, attribution and milestones: a protocol, an autogen adapter,
prompt templates loaded by name, and `ask_json`, which turns free-form replies into checked data.

The judge is the only impure part of the DoVer pipeline's decision logic; everything it returns
passes through a caller-supplied validator, and bad model output is retried, then reported as
None — never raised. Every call of a `ChatClientJudge` given a tracer is a `chat` span (agent
"judge"), so judge time and tokens are in the `llm_calls` view beside the team's calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import pydantic_core
from pydantic import ValidationError

from branchpoint.errors import BranchpointError
from branchpoint.model import Step
from branchpoint.telemetry import attributes as A

if TYPE_CHECKING:
    from autogen_core.models import ChatCompletionClient
    from opentelemetry.trace import Tracer

    from branchpoint.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
PROMPT_PACKAGE = "branchpoint.interventions.prompts"
USER_MARKER = "## user"
SYSTEM_MARKER = "## system"
# Validators signal a reply they cannot use with one of these; anything else is a bug and raises.
REJECTIONS: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError, ValidationError)
# Retries after the first corrective note sample instead of decoding greedily: a greedy model
# asked the same thing twice answers the same thing twice.
RETRY_TEMPERATURE = 0.7
JUDGE_AGENT = "judge"
NO_JUDGE = ("", "none")
# The run a judge is looking at, so its `chat` spans land under that run in `llm_calls`.
_JUDGED_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("judged_run", default=None)


class Judge(Protocol):
    """Anything that answers a (system, user) prompt pair with text."""

    def complete(self, system: str, user: str) -> str:
        """The model's reply to one prompt."""


@runtime_checkable
class SamplingJudge(Judge, Protocol):
    """A judge that can also answer by sampling (used for retries, so they differ)."""

    def sample(self, system: str, user: str, attempt: int) -> str:
        """A sampled reply; `attempt` seeds it, so each retry draws a different sample."""


class JudgeSpecError(BranchpointError):
    """`--judge` text that names no usable judge."""


def judge_model(spec: str | None) -> str | None:
    """The validated `--judge` model spec, or None for no judge (`none`); checked before any work.

    `sim` is refused: the sim backend plays a team's turns from a worked solution, it cannot read
    a log and blame a step.
    """
    if spec is None or spec.strip().lower() in NO_JUDGE:
        return None
    if spec.strip() == "sim" or spec.strip().startswith("sim:"):
        raise JudgeSpecError(
            f"--judge {spec.strip()}: the sim backend simulates a team and cannot judge; "
            "use --judge local, local:/path.gguf, openai:NAME@URL, or none"
        )
    from branchpoint.agents.backends import parse_model_spec

    return str(parse_model_spec(spec))


@contextmanager
def judging(run_id: str) -> Iterator[None]:
    """Judge calls made inside this block are recorded under `run_id`."""
    token = _JUDGED_RUN.set(run_id)
    try:
        yield
    finally:
        _JUDGED_RUN.reset(token)


class ChatClientJudge:
    """A Judge over an autogen ChatCompletionClient, greedy and seeded, callable synchronously.

    The client's coroutines run on a private event loop in a daemon thread, so the judge works
    from plain code and from inside a running event loop alike, and async HTTP clients bound to
    that loop stay valid across calls.
    """

    def __init__(
        self,
        client: ChatCompletionClient,
        seed: int = 0,
        max_tokens: int = 512,
        tracer: Tracer | None = None,
        model: str = JUDGE_AGENT,
    ) -> None:
        self.client = client
        self.seed = seed
        self.max_tokens = max_tokens
        self.tracer = tracer
        self.model = model
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def complete(self, system: str, user: str) -> str:
        """Send one system+user prompt at temperature 0 and return the reply text."""
        return self._ask(system, user, self.seed, 0.0)

    def sample(self, system: str, user: str, attempt: int) -> str:
        """Send one prompt sampled at RETRY_TEMPERATURE with the seed moved by `attempt`."""
        return self._ask(system, user, self.seed + attempt, RETRY_TEMPERATURE)

    def _ask(self, system: str, user: str, seed: int, temperature: float) -> str:
        from autogen_core.models import SystemMessage, UserMessage  # keeps pure callers light

        request = self.client.create(
            [SystemMessage(content=system), UserMessage(content=user, source="user")],
            extra_create_args={
                "seed": seed,
                "temperature": temperature,
                "max_tokens": self.max_tokens,
            },
        )
        if self.tracer is None:
            return _text(self._run(request).content)
        with self.tracer.start_as_current_span(f"chat {self.model}") as span:
            run_id = _JUDGED_RUN.get()
            prompt = f"system: {system}\nuser: {user}"
            span.set_attributes(
                {
                    **A.chat_request(self.model, prompt),
                    A.AGENT_NAME: JUDGE_AGENT,
                    **({A.RUN_ID: run_id} if run_id else {}),
                }
            )
            result = self._run(request)
            text = _text(result.content)
            span.set_attributes(
                {
                    **A.chat_reply(
                        text, result.usage.prompt_tokens, result.usage.completion_tokens
                    ),
                    A.CACHED: bool(result.cached),
                }
            )
        return text

    def close(self) -> None:
        """Stop the private event loop."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps([str(c) for c in content])


def open_judge(
    spec: str | None, store: Any, settings: Settings, tracer: Tracer | None = None
) -> ChatClientJudge | None:
    """The judge a `--judge` spec names, its calls recorded in the trace store (replayable) and,
    with a tracer, traced as `chat` spans; None for `none`."""
    model = judge_model(spec)
    if model is None:
        return None
    from branchpoint.agents.backends import make_chat_client, parse_model_spec
    from branchpoint.agents.recording import RecordingClient, TraceRecordStore
    from branchpoint.agents.teams import MATH
    from branchpoint.orchestrator.runner import preflight_model

    preflight_model(model, MATH, settings)
    client = make_chat_client(parse_model_spec(model), settings)
    recording = RecordingClient(client, TraceRecordStore(store), model)
    return ChatClientJudge(recording, tracer=tracer, model=model)


@cache
def _template(name: str) -> tuple[str, str]:
    text = resources.files(PROMPT_PACKAGE).joinpath(f"{name}.md").read_text(encoding="utf-8")
    head, sep, user = text.partition(USER_MARKER)
    if not sep or SYSTEM_MARKER not in head:
        raise ValueError(f"prompt {name}.md needs '{SYSTEM_MARKER}' and '{USER_MARKER}' sections")
    return head.split(SYSTEM_MARKER, 1)[1].strip(), user.strip()


def render_prompt(name: str, **fields: object) -> tuple[str, str]:
    """The (system, user) pair of prompt template `name` with `$field`s substituted."""
    system, user = _template(name)
    values = {k: str(v) for k, v in fields.items()}
    return Template(system).substitute(values), Template(user).substitute(values)


def render_log(steps: Sequence[Step], max_chars: int = 400, max_total: int = 8000) -> str:
    """Steps as `[Step k] agent: content` lines, each content cut to `max_chars` characters.

    Long logs get a smaller per-step cut (never below 60) so the whole log stays near
    `max_total` characters: a local model's context is 4k tokens.
    """
    if steps:
        max_chars = min(max_chars, max(60, max_total // len(steps)))
    lines = []
    for step in steps:
        content = " ".join(step.content.split())
        if len(content) > max_chars:
            content = content[:max_chars] + " …"
        lines.append(f"[Step {step.index}] {step.agent}: {content}")
    return "\n".join(lines)


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text` (inside code fences or prose); ValueError when none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            cut = _truncated_object(text[start:])
            if cut is not None:
                return cut
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found in the reply")


def _truncated_object(text: str) -> dict[str, Any] | None:
    """The complete members of a JSON object cut off by the reply's token limit (a judge that
    writes its answer first and then runs out of tokens still answered), else None."""
    try:
        value = pydantic_core.from_json(text.rstrip().removesuffix("```"), allow_partial=True)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def parse_step_index(value: object) -> int | None:
    """A step number given as an int, integral float or digit string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def ask_json(
    judge: Judge,
    system: str,
    user: str,
    validate: Callable[[dict[str, Any]], T],
    retries: int = 2,
    failures: list[str] | None = None,
) -> T | None:
    """Ask until `validate` accepts the first JSON object of a reply; None after `retries` retries.

    `validate` raises ValueError/KeyError/TypeError/ValidationError on an unusable reply; the
    reason goes back to the model in a short corrective note and, when given, into `failures`.
    """
    prompt = user
    for attempt in range(retries + 1):
        if attempt >= 2 and isinstance(judge, SamplingJudge):
            reply = judge.sample(system, prompt, attempt)
        else:
            reply = judge.complete(system, prompt)
        try:
            return validate(extract_json_object(reply))
        except REJECTIONS as exc:
            reason = _short(exc)
            log.info("judge reply rejected (attempt %d): %s", attempt + 1, reason)
            if failures is not None:
                failures.append(f"attempt {attempt + 1}: {reason}")
            prompt = retry_prompt(user, reason, reply, attempt)
    return None


def retry_prompt(user: str, reason: str, reply: str, attempt: int) -> str:
    """The prompt of the retry after `attempt` failed: the reason, and from the second retry on,
    the start of the rejected reply and the attempt number, so no two retries ask the same."""
    note = (
        f"{user}\n\nYour previous reply could not be used: {reason}. "
        "Answer again with exactly one JSON object and nothing else."
    )
    if attempt == 0:
        return note
    quoted = " ".join(reply.split())[:160]
    return f"{note}\n(Attempt {attempt + 2}. Your rejected reply began: {quoted!r})"


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"missing key {text}" if isinstance(exc, KeyError) else text[:200]
