"""The base of branchpoint's own autogen chat-completion clients (sim, local, record/replay), and
the wrapper that keeps an endpoint's failures readable (EndpointClient).

autogen's `ChatCompletionClient` protocol asks for usage bookkeeping, streaming, token counting
and model info besides `create`; they are the same for every text-only client, so they live here
once and each client implements only `create`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelInfo,
    RequestUsage,
)

from branchpoint.errors import ModelCallError

TEXT_MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=False,
    json_output=False,
    family="unknown",
    structured_output=False,
)
CONTEXT_TOKENS = 4096


class TextChatClient(ChatCompletionClient):
    """Usage bookkeeping and the protocol's boilerplate for a text-only client."""

    def __init__(self) -> None:
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._last_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    def _account(self, usage: RequestUsage) -> RequestUsage:
        """Add one call's usage to the totals; returns it."""
        self._last_usage = usage
        self._usage = RequestUsage(
            prompt_tokens=self._usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._usage.completion_tokens + usage.completion_tokens,
        )
        return usage

    def create_stream(  # type: ignore[override]
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Streaming is served as one chunk: the whole result."""

        async def one_chunk() -> AsyncGenerator[str | CreateResult, None]:
            yield await self.create(messages, **kwargs)

        return one_chunk()

    async def close(self) -> None:
        """Nothing to release by default."""

    def actual_usage(self) -> RequestUsage:
        """Tokens used by the last call."""
        return self._last_usage

    def total_usage(self) -> RequestUsage:
        """Tokens used by every call of this client."""
        return self._usage

    def count_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        """Rough token count (words), used only for budgeting."""
        return sum(len(str(getattr(m, "content", "")).split()) for m in messages)

    def remaining_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        """Room left in a 4k context."""
        return max(CONTEXT_TOKENS - self.count_tokens(messages), 0)

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        """Deprecated autogen property; mirrors model_info."""
        return self.model_info  # type: ignore[return-value]

    @property
    def model_info(self) -> ModelInfo:
        """Text only: no vision, tools or JSON mode."""
        return TEXT_MODEL_INFO


class EndpointClient(TextChatClient):
    """An OpenAI-compatible endpoint's client whose failures say what the endpoint did.

    Timeouts, connection errors, 429 and 5xx are retried by the openai client itself (its
    `max_retries`, exponential backoff); a malformed answer is retried here with the same
    budget. What still fails becomes a `ModelCallError` naming the status code and message:
    an openai exception cannot cross Ray (it holds an httpx response), so its cause was lost.
    """

    def __init__(self, inner: ChatCompletionClient, endpoint: str, retries: int) -> None:
        super().__init__()
        self.inner = inner
        self.endpoint = endpoint
        self.retries = retries

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        """Call the endpoint; malformed answers are retried with backoff."""
        for attempt in range(self.retries + 1):
            try:
                result = await self.inner.create(messages, **kwargs)
            except Exception as exc:  # noqa: BLE001  (classified below, re-raised as ours)
                failure = describe_endpoint_failure(exc)
                if failure.malformed and attempt < self.retries:
                    await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
                    continue
                attempts = self.retries + 1 if failure.retried_by_client else attempt + 1
                raise ModelCallError(
                    f"model endpoint {self.endpoint}: {failure.text} "
                    f"(gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
                ) from None
            self._account(result.usage)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        """Close the underlying HTTP client."""
        await self.inner.close()

    @property
    def model_info(self) -> ModelInfo:
        """The endpoint client's (function calling may be on)."""
        return self.inner.model_info


@dataclass(frozen=True)
class EndpointFailure:
    """What went wrong in one endpoint call, and whether a retry here may help."""

    text: str
    malformed: bool = False
    retried_by_client: bool = False


def describe_endpoint_failure(exc: BaseException) -> EndpointFailure:
    """A one-line cause (HTTP status and the server's message) for an endpoint call's error."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return EndpointFailure(f"HTTP {exc.status_code}: {_server_message(exc)}", False, retried)
    if isinstance(exc, openai.APITimeoutError):
        return EndpointFailure(
            "no answer before the timeout (BRANCHPOINT_LLM_TIMEOUT)", False, True
        )
    if isinstance(exc, openai.APIConnectionError):
        return EndpointFailure(f"connection failed: {exc.__cause__ or exc}", False, True)
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError, KeyError)):
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return EndpointFailure(f"malformed answer: {detail}", malformed=True)
    return EndpointFailure(
        f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    )


def _server_message(exc: Any) -> str:
    """The error message an OpenAI-style server put in its body, else the response text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message).splitlines()[0][:300]
    text = getattr(getattr(exc, "response", None), "text", "") or str(exc)
    return text.strip().splitlines()[0][:300] if text.strip() else "(empty body)"
