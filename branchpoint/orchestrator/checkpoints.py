"""Open the LangGraph checkpoint saver that runs persist every step to: SQLite, Postgres or memory.

These are LangGraph's maintained savers, configured for our use (several threads of one
process sharing one saver); we add no saver of our own. The spec comes from
`Settings.checkpointer`: "sqlite" (the embedded default, a file beside the trace database),
"memory" (tests), or a `postgresql://` URL (a cluster).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from branchpoint.errors import BranchpointError

CheckpointerKind = Literal["sqlite", "memory", "postgres"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Seconds a SQLite writer waits for another connection's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Connections shared by the threads of one process (one graph step holds one at a time).
POSTGRES_POOL_MAX = 16
POSTGRES_CONNECT_TIMEOUT_S = 10.0


class CheckpointerConfigError(BranchpointError):
    """A checkpointer spec we cannot open: unknown, missing its extra, or unreachable."""


def checkpointer_kind(spec: str) -> CheckpointerKind:
    """Which saver a spec names: "sqlite", "memory", or a postgresql:// URL."""
    cleaned = spec.strip()
    if cleaned.lower() in ("sqlite", "memory"):
        return "sqlite" if cleaned.lower() == "sqlite" else "memory"
    if cleaned.lower().startswith(POSTGRES_SCHEMES):
        return "postgres"
    raise CheckpointerConfigError(
        f"Unknown checkpointer {spec!r}: use 'sqlite' (the default, a file beside the trace "
        "database), 'memory', or a postgresql://USER:PASSWORD@HOST:PORT/DB URL "
        "(--checkpointer or BRANCHPOINT_CHECKPOINTER)."
    )


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_checkpointer(spec: str, sqlite_path: Path) -> AbstractContextManager[BaseCheckpointSaver]:
    """Open the saver `spec` names (sqlite at `sqlite_path`, memory, or Postgres); closed on exit."""
    kind = checkpointer_kind(spec)
    if kind == "sqlite":
        return _sqlite_saver(sqlite_path)
    if kind == "memory":
        return _memory_saver()
    return _postgres_saver(spec.strip())


@contextmanager
def _memory_saver() -> Iterator[BaseCheckpointSaver]:
    yield InMemorySaver()


@contextmanager
def _sqlite_saver(path: Path) -> Iterator[BaseCheckpointSaver]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # SqliteSaver serialises its own use of the connection with a lock, so one connection
    # may be shared by threads; WAL lets readers in other processes proceed during a write.
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # No fsync per commit: in WAL mode a killed process still loses nothing (only a power
        # cut can drop the last commits), and commits are what a sweep's forks queue on.
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


@contextmanager
def _postgres_saver(url: str) -> Iterator[BaseCheckpointSaver]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout
    except ImportError as exc:
        raise CheckpointerConfigError(
            f"The Postgres checkpointer needs the `postgres` extra ({exc.name} is missing): "
            "pip install -e '.[postgres]'."
        ) from exc
    # autocommit + dict_row are what PostgresSaver's queries expect; prepare_threshold=0
    # keeps it working behind transaction-pooling proxies such as PgBouncer.
    pool = ConnectionPool(
        conninfo=url,
        min_size=1,
        max_size=POSTGRES_POOL_MAX,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    # The pool logs a warning for every failed attempt; the error below is the one line a user sees.
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        pool.open(wait=True, timeout=POSTGRES_CONNECT_TIMEOUT_S)
    except PoolTimeout as exc:
        pool.close()
        raise CheckpointerConfigError(
            f"Cannot connect to the Postgres checkpointer at {redact_url(url)} within "
            f"{POSTGRES_CONNECT_TIMEOUT_S:.0f}s: check that the server is up and the URL, "
            "user and password are right, or use --checkpointer sqlite."
        ) from exc
    finally:
        pool_log.setLevel(level)
    try:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        saver.setup()
        yield saver
    finally:
        pool.close()
