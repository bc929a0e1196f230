"""Fixtures for agents tests: the embedded default model as an autogen client."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchpoint.agents.backends import make_chat_client, parse_model_spec
from branchpoint.agents.local_model import LlamaCppClient
from branchpoint.settings import Settings


@pytest.fixture(scope="session")
def local_client(local_gguf: Path) -> LlamaCppClient:
    """`--model local` built through make_chat_client, on the verified default GGUF."""
    client = make_chat_client(parse_model_spec("local"), Settings(model_cache=local_gguf.parent))
    assert isinstance(client, LlamaCppClient)
    return client
