"""The `openai` backend over real HTTP, against llama-cpp-python's OpenAI-compatible server."""

from __future__ import annotations

import asyncio

import pytest
from autogen_core.models import CreateResult, SystemMessage, UserMessage

from branchpoint.agents.backends import check_endpoint, make_chat_client, parse_model_spec
from branchpoint.settings import Settings

pytestmark = pytest.mark.local_model


def test_chat_call_through_the_openai_compatible_server(llama_server: str) -> None:
    spec = parse_model_spec(llama_server)
    assert spec.backend == "openai" and str(spec) == llama_server
    check_endpoint(spec)
    client = make_chat_client(spec, Settings())
    messages = [
        SystemMessage(content="You answer with one short sentence."),
        UserMessage(content="What is the capital of France?", source="user"),
    ]
    args = {"seed": 3, "temperature": 0.0, "max_tokens": 24}

    async def two_calls() -> tuple[CreateResult, CreateResult]:
        # One event loop: the OpenAI client's HTTP pool belongs to the loop that opened it.
        first = await client.create(messages, extra_create_args=args)
        second = await client.create(messages, extra_create_args=args)
        await client.close()
        return first, second

    first, second = asyncio.run(two_calls())
    assert isinstance(first.content, str) and first.content.strip()
    assert "paris" in first.content.lower()
    assert first.usage.prompt_tokens > 0 and first.usage.completion_tokens > 0
    assert first.content == second.content
