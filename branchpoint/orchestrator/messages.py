"""The append-only message store that graph state points into.

Each step's message is stored once with a pointer to the previous message (like a commit and its
parent), and the graph state holds only the id of the newest one (`head`). A checkpoint therefore
stays the same size however long the run is, and a fork shares its parent's prefix by pointer.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Protocol

from branchpoint.model import Step

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    parent_id TEXT,
    step_json TEXT NOT NULL
)
"""
_CHAIN = """
WITH RECURSIVE chain(message_id, parent_id, step_json, depth) AS (
    SELECT message_id, parent_id, step_json, 0 FROM messages WHERE message_id = ?
    UNION ALL
    SELECT m.message_id, m.parent_id, m.step_json, c.depth + 1
    FROM messages m JOIN chain c ON m.message_id = c.parent_id
)
SELECT step_json FROM chain ORDER BY depth DESC
"""


class MessageStore(Protocol):
    """Append-only storage of step messages linked to their predecessor."""

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order."""

    def get(self, message_id: str) -> Step:
        """One stored message."""


class InMemoryMessageStore:
    """The reference implementation, for tests."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str | None, Step]] = {}
        self._lock = threading.Lock()

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""
        message_id = uuid.uuid4().hex
        with self._lock:
            self._rows[message_id] = (parent_id, step)
        return message_id

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order."""
        out: list[Step] = []
        while head is not None:
            head, step = self._rows[head]
            out.append(step)
        return out[::-1]

    def get(self, message_id: str) -> Step:
        """One stored message."""
        return self._rows[message_id][1]


class SqliteMessageStore:
    """Messages in a SQLite file (WAL), shared by the threads of the driver process."""

    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""
        message_id = uuid.uuid4().hex
        with self._lock:
            self._conn.execute(
                "INSERT INTO messages VALUES (?, ?, ?)",
                (message_id, parent_id, step.model_dump_json()),
            )
        return message_id

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order (one recursive query)."""
        if head is None:
            return []
        with self._lock:
            rows = self._conn.execute(_CHAIN, (head,)).fetchall()
        return [Step.model_validate_json(r[0]) for r in rows]

    def get(self, message_id: str) -> Step:
        """One stored message."""
        with self._lock:
            row = self._conn.execute(
                "SELECT step_json FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
        return Step.model_validate_json(row[0])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
