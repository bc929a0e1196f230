"""Model backends: parse `--model` text into a ModelSpec and build the autogen chat client for it.

Spec syntax: `sim` or `sim:SECONDS` (the simulated model, with a latency per call), `local` (the
verified default GGUF), `local:/path/x.gguf`, and `openai:NAME@http://host:port/v1` for any
OpenAI-compatible endpoint. `parse_model_spec` is the one parser of this text.

Credentials written into an endpoint URL (`http://user:secret@host/v1`, `?api_key=…`) never
reach storage: `str(spec)` is the redacted text, which is what runs, records and spans carry; the
full URL is remembered in this process (`reveal_model`) for the hosts that call the endpoint.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from autogen_core.models import ChatCompletionClient

from branchpoint.agents.chat_client import TEXT_MODEL_INFO, EndpointClient
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
MAX_SIM_LATENCY_S = 60.0
REDACTED = "***"
_SPEC_HELP = (
    "use sim, sim:SECONDS, local, local:/path/model.gguf or openai:NAME@http://host:port/v1"
)
_OPENAI = re.compile(r"^openai:(?P<name>\S+?)@(?P<url>https?://\S+)$")
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig", re.IGNORECASE)
_REVEALED: dict[str, str] = {}
_REVEALED_LOCK = threading.Lock()


class ModelSpecError(BranchpointError):
    """`--model` text that is not a model spec."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model a team runs on; `str(spec)` is its `--model` text with credentials redacted."""

    backend: Backend
    name: str
    path: Path | None = None
    base_url: str | None = None
    latency_s: float = 0.0

    def __str__(self) -> str:
        if self.backend == "openai" and self.base_url is not None:
            return f"openai:{self.name}@{redact_url(self.base_url)}"
        if self.backend == "local" and self.path is not None:
            return f"local:{self.path}"
        if self.backend == "local" and self.name in EMBEDDED_MODELS:
            return f"local:{self.name}"
        if self.backend == "sim" and self.latency_s:
            return f"sim:{self.latency_s:g}"
        return self.backend


def parse_model_spec(text: str) -> ModelSpec:
    """Parse `--model` text; raises ModelSpecError naming the accepted forms."""
    if text != text.strip():
        raise ModelSpecError(f"model spec {text!r} has leading or trailing spaces; remove them")
    if text == "sim" or text.startswith("sim:"):
        return ModelSpec("sim", "sim", latency_s=_sim_latency(text))
    if text == "local":
        return ModelSpec("local", DEFAULT_LOCAL_NAME)
    if text.startswith("local:"):
        return _local_spec(text)
    if text.startswith("openai:"):
        return _openai_spec(text)
    raise ModelSpecError(f"unknown model spec {text!r}; {_SPEC_HELP}")


def _sim_latency(text: str) -> float:
    if text == "sim":
        return 0.0
    raw = text.removeprefix("sim:")
    try:
        latency = float(raw)
    except ValueError:
        latency = math.nan
    if not math.isfinite(latency) or not 0 <= latency <= MAX_SIM_LATENCY_S:
        raise ModelSpecError(
            f"model spec {text!r}: the sim latency must be a number of seconds from 0 to "
            f"{MAX_SIM_LATENCY_S:g}, e.g. sim:0.5"
        )
    return latency


def _local_spec(text: str) -> ModelSpec:
    raw = text.removeprefix("local:")
    if not raw:
        raise ModelSpecError(f"model spec {text!r} has an empty path; {_SPEC_HELP}")
    if raw == CODER_05B.name:
        return ModelSpec("local", DEFAULT_LOCAL_NAME)
    if raw in EMBEDDED_MODELS:  # an embedded model by name, e.g. local:coder-1.5b
        return ModelSpec("local", raw)
    path = Path(raw)
    if path.suffix.lower() != ".gguf":
        raise ModelSpecError(
            f"model spec {text!r} names neither an embedded model ({', '.join(EMBEDDED_MODELS)}) "
            "nor a .gguf file; pass a GGUF model as local:/path/model.gguf"
        )
    return ModelSpec("local", path.stem, path=path)


def _openai_spec(text: str) -> ModelSpec:
    match = _OPENAI.match(text)
    if not match:
        raise ModelSpecError(
            f"model spec {text!r} needs a model name and an http(s) base URL, "
            "e.g. openai:qwen@http://127.0.0.1:8000/v1"
        )
    url = match["url"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise ModelSpecError(
            f"model spec {redact_url(url)!r}: the base URL is malformed ({exc}); "
            "e.g. openai:qwen@http://127.0.0.1:8000/v1"
        ) from None
    if not parts.hostname:
        raise ModelSpecError(f"model spec {text!r}: the base URL has no host")
    spec = ModelSpec("openai", match["name"], base_url=url)
    with _REVEALED_LOCK:
        _REVEALED[str(spec)] = text
    return spec


def redact_url(url: str) -> str:
    """`url` with its user info and secret-looking query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{REDACTED}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_model(text: str) -> str:
    """The storable form of `--model` text (credentials redacted); unparsable text as is."""
    try:
        return str(parse_model_spec(text))
    except ModelSpecError:
        return text


def reveal_model(text: str) -> str:
    """The full `--model` text behind a redacted one parsed in this process (else `text`)."""
    with _REVEALED_LOCK:
        return _REVEALED.get(text, text)


def api_key(settings: Settings) -> str:
    """The key sent to `openai` endpoints: from the variable named by settings.api_key_env."""
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

        client = OpenAIChatCompletionClient(
            model=spec.name,
            base_url=spec.base_url,
            api_key=api_key(settings),
            model_info={**TEXT_MODEL_INFO, "function_calling": function_calling},
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        return EndpointClient(client, redact_url(spec.base_url), settings.llm_max_retries)
    raise ValueError(f"make_chat_client builds local and openai clients, not {spec.backend!r}")


def check_endpoint(
    spec: ModelSpec,
    timeout_s: float = 3.0,
    api_key_value: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Fail fast with ModelUnavailableError when an `openai` endpoint does not answer /models.

    Sends the same key as the model calls (a server may guard /models too)."""
    if spec.backend != "openai" or spec.base_url is None:
        return
    settings = settings or Settings()
    key = api_key_value if api_key_value is not None else api_key(settings)
    url = f"{spec.base_url.rstrip('/')}/models"
    shown = redact_url(spec.base_url)
    try:
        response = httpx.get(url, timeout=timeout_s, headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        reason = redact_url(str(exc)) or type(exc).__name__
        raise ModelUnavailableError(
            f"cannot reach model endpoint {shown}: {reason}; start the server or fix --model"
        ) from None
    if response.status_code in (401, 403):
        raise ModelUnavailableError(
            f"model endpoint {shown} refused the API key (HTTP {response.status_code}); "
            f"set the key in ${settings.api_key_env} (BRANCHPOINT_API_KEY_ENV names the variable)"
        )
    if response.status_code >= 400:
        raise ModelUnavailableError(
            f"model endpoint {shown} answered HTTP {response.status_code} at /models; "
            "check the base URL in --model (it usually ends in /v1)"
        )
