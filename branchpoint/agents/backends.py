"""Model backends: parse `--model` text into a ModelSpec and build the autogen chat client for it.

Spec syntax: `sim`, `local` (the verified default GGUF), `local:/path/x.gguf`, and
`openai:NAME@http://host:port/v1` for any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from autogen_core.models import ChatCompletionClient

from branchpoint.agents.chat_client import TEXT_MODEL_INFO
from branchpoint.agents.local_model import (
    CODER_05B,
    DEFAULT_GGUF_NAME,
    EMBEDDED_MODELS,
    LlamaCppClient,
    resolve_gguf,
)
from branchpoint.errors import BranchpointError, ModelUnavailableError
from branchpoint.settings import Settings

Backend = Literal["sim", "local", "openai"]
DEFAULT_LOCAL_NAME = DEFAULT_GGUF_NAME.removesuffix(".gguf")
# Local servers (llama.cpp, vLLM, Ollama) ignore the key but the OpenAI client insists on one.
PLACEHOLDER_API_KEY = "not-needed"
_SPEC_HELP = (
    "use sim, local, local:coder-1.5b, local:/path/model.gguf or openai:NAME@http://host:port/v1"
)
_OPENAI = re.compile(r"^openai:(?P<name>\S+?)@(?P<url>https?://\S+)$")


class ModelSpecError(BranchpointError):
    """`--model` text that is not a model spec."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model a team runs on; `str(spec)` is the `--model` text it was parsed from."""

    backend: Backend
    name: str
    path: Path | None = None
    base_url: str | None = None

    def __str__(self) -> str:
        if self.backend == "openai":
            return f"openai:{self.name}@{self.base_url}"
        if self.backend == "local" and self.path is not None:
            return f"local:{self.path}"
        if self.backend == "local" and self.name in EMBEDDED_MODELS:
            return f"local:{self.name}"
        return self.backend


def parse_model_spec(text: str) -> ModelSpec:
    """Parse `--model` text; raises ModelSpecError naming the accepted forms."""
    text = text.strip()
    if text == "sim":
        return ModelSpec("sim", "sim")
    if text == "local":
        return ModelSpec("local", DEFAULT_LOCAL_NAME)
    if text.startswith("local:"):
        raw = text.removeprefix("local:")
        if not raw:
            raise ModelSpecError(f"model spec {text!r} has an empty path; {_SPEC_HELP}")
        if raw == CODER_05B.name:
            return ModelSpec("local", DEFAULT_LOCAL_NAME)
        if raw in EMBEDDED_MODELS:  # an embedded model by name, e.g. local:coder-1.5b
            return ModelSpec("local", raw)
        path = Path(raw)
        return ModelSpec("local", path.stem, path=path)
    if text.startswith("openai:"):
        match = _OPENAI.match(text)
        if not match:
            raise ModelSpecError(
                f"model spec {text!r} needs a model name and an http(s) base URL, "
                "e.g. openai:qwen@http://127.0.0.1:8000/v1"
            )
        return ModelSpec("openai", match["name"], base_url=match["url"])
    raise ModelSpecError(f"unknown model spec {text!r}; {_SPEC_HELP}")


def _api_key(settings: Settings) -> str:
    return os.environ.get(settings.api_key_env, "") or PLACEHOLDER_API_KEY


def make_chat_client(
    spec: ModelSpec, settings: Settings, function_calling: bool = False
) -> ChatCompletionClient:
    """The autogen chat client for a `local` or `openai` spec (`sim` is built by agents.sim).

    `function_calling`: the agent passes tools to the model (an `openai` endpoint must then
    parse tool calls, e.g. llama-cpp-python's `--chat_format chatml-function-calling`).
    """
    if spec.backend == "local":
        return LlamaCppClient(
            resolve_gguf(spec.path, settings.model_cache, embedded=spec.name),
            model_name=spec.name,
            n_threads=settings.model_threads,
        )
    if spec.backend == "openai" and spec.base_url is not None:
        from autogen_ext.models.openai import OpenAIChatCompletionClient

        return OpenAIChatCompletionClient(
            model=spec.name,
            base_url=spec.base_url,
            api_key=_api_key(settings),
            model_info={**TEXT_MODEL_INFO, "function_calling": function_calling},
            timeout=settings.llm_timeout_s,
        )
    raise ValueError(f"make_chat_client builds local and openai clients, not {spec.backend!r}")


def check_endpoint(spec: ModelSpec, timeout_s: float = 3.0, api_key: str | None = None) -> None:
    """Fail fast with ModelUnavailableError when an `openai` endpoint does not answer /models."""
    if spec.backend != "openai" or spec.base_url is None:
        return
    url = f"{spec.base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, timeout=timeout_s, headers=headers)
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ModelUnavailableError(
            f"cannot reach model endpoint {spec.base_url}: {reason}; start the server or fix --model"
        ) from exc
    if response.status_code in (401, 403):
        raise ModelUnavailableError(
            f"model endpoint {spec.base_url} refused the API key (HTTP {response.status_code}); "
            "set the key in $OPENAI_API_KEY or the variable named by $BRANCHPOINT_API_KEY_ENV"
        )
    if response.status_code >= 400:
        raise ModelUnavailableError(
            f"model endpoint {spec.base_url} answered HTTP {response.status_code} at /models; "
            "check the base URL in --model (it usually ends in /v1)"
        )
