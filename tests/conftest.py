"""Session fixtures shared across test folders: the verified default GGUF and a llama.cpp server."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from servers import wait_until_serving

HEAVY_MARKERS = frozenset(
    {"ray", "cluster", "local_model", "postgres", "phoenix", "browser", "slow"}
)
SERVER_STARTUP_TIMEOUT_S = 180.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test with none of the heavy markers is in the fast tier (`pytest -m fast`)."""
    for item in items:
        if not HEAVY_MARKERS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.fast)


SERVER_MODEL_NAME = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def local_gguf() -> Path:
    """The default model, assembled and SHA-256 verified in the model cache (once per machine)."""
    from branchpoint.agents.local_model import ensure_default_gguf
    from branchpoint.settings import Settings

    return ensure_default_gguf(Settings().model_cache)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(local_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1; yields its `openai:` spec text."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        yield from _serve(local_gguf, port, log, log_path)


def _serve(gguf: Path, port: int, log: IO[bytes], log_path: Path) -> Iterator[str]:
    # chatml-function-calling: Qwen's own ChatML, and the server parses tool calls (autogen
    # teams with FunctionTools); the wrapper turns off the weight repacking that crashes on AMX.
    cmd = [sys.executable, str(Path(__file__).parent / "llama_server_main.py"),
           "--model", str(gguf), "--model_alias", SERVER_MODEL_NAME, "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
           "--chat_format", "chatml-function-calling"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(
            proc, f"{base_url}/models", SERVER_STARTUP_TIMEOUT_S, log_path, "llama server"
        )
        yield f"openai:{SERVER_MODEL_NAME}@{base_url}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
