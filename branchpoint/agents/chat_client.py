"""The base of branchpoint's own autogen chat-completion clients (sim, local, record/replay).

autogen's `ChatCompletionClient` protocol asks for usage bookkeeping, streaming, token counting
and model info besides `create`; they are the same for every text-only client, so they live here
once and each client implements only `create`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelInfo,
    RequestUsage,
)

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
