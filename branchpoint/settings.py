"""The one home of configuration: flags and environment variables resolve into `Settings`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DB = "branchpoint.duckdb"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"BRANCHPOINT_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Where traces, checkpoints and models live, and how to reach Ray and model endpoints."""

    db_path: Path = field(default_factory=lambda: Path(_env("DB", DEFAULT_DB) or DEFAULT_DB))
    # Checkpoint saver: "sqlite" (beside the trace db), a postgres:// URL, or "memory".
    checkpointer: str = field(default_factory=lambda: _env("CHECKPOINTER", "sqlite") or "sqlite")
    ray_address: str | None = field(default_factory=lambda: _env("RAY_ADDRESS"))
    model_cache: Path = field(
        default_factory=lambda: Path(
            _env("MODEL_CACHE", str(Path.home() / ".cache" / "branchpoint" / "models")) or ""
        )
    )
    # Name of the environment variable that holds the API key for `openai:` models.
    api_key_env: str = field(default_factory=lambda: _env("API_KEY_ENV", "OPENAI_API_KEY") or "")
    llm_timeout_s: float = field(default_factory=lambda: float(_env("LLM_TIMEOUT", "120") or 120))
    # Retries of one endpoint call (timeouts, connection errors, 429, 5xx, malformed answers),
    # with exponential backoff: the openai client's own `max_retries`.
    llm_max_retries: int = field(default_factory=lambda: int(_env("LLM_RETRIES", "2") or 2))
    # Code sandbox: "strict" (bubblewrap; code is refused where it cannot run) or "weak"
    # (network and PID namespaces and limits only: the host's files stay visible).
    sandbox: str = field(default_factory=lambda: _env("SANDBOX", "strict") or "strict")
    max_steps: int = 24
    # Spans on (the default); off only for measuring what tracing costs.
    tracing: bool = True
    n_hosts: int = 2
    # Threads per embedded llama.cpp model; 0: the node's cores shared among the agent hosts.
    llama_threads: int = field(default_factory=lambda: int(_env("LLAMA_THREADS", "0") or 0))

    @property
    def model_threads(self) -> int:
        """Threads for one embedded model. Every host loads its own copy, and llama.cpp's
        threads spin while they wait, so more threads than cores slows every generation."""
        if self.llama_threads > 0:
            return self.llama_threads
        return max(1, (os.cpu_count() or 1) // max(1, self.n_hosts))

    @property
    def checkpoint_path(self) -> Path:
        """SQLite file holding LangGraph checkpoints and the append-only message store."""
        return self.db_path.with_suffix(".checkpoints.sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the non-None flag values applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
