"""The append-only message store that graph state points into, and what each host has of it.

Each step's message is stored once with a pointer to the previous message (like a commit and its
parent), and the graph state holds only the id of the newest one (`head`). A checkpoint therefore
stays the same size however long the run is, and a fork shares its parent's prefix by pointer.

A step does not re-read its chain: the driver keeps the messages it wrote or read in memory
(bounded) and sends each host only the messages that host has not had yet (`HostMessages`), so a
step's cost does not grow with its index.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections import ChainMap, OrderedDict
from collections.abc import Container
from pathlib import Path
from typing import Protocol

from branchpoint.model import MessageLink, Step, TranscriptRef

# Messages each process keeps in memory: enough for every run in flight of a large sweep.
CACHE_MESSAGES = 200_000

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
SELECT message_id, parent_id, step_json FROM chain ORDER BY depth DESC
"""


class MessageStore(Protocol):
    """Append-only storage of step messages linked to their predecessor."""

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order."""

    def get(self, message_id: str) -> Step:
        """One stored message."""

    def link(self, message_id: str) -> MessageLink:
        """One stored message with its predecessor's id."""

    def close(self) -> None:
        """Release the storage."""


def links_since(store: MessageStore, head: str | None, known: Container[str]) -> list[MessageLink]:
    """The messages of `head`'s chain after the newest one in `known`, oldest first."""
    out: list[MessageLink] = []
    while head is not None and head not in known:
        link = store.link(head)
        out.append(link)
        head = link.parent_id
    return out[::-1]


class LinkCache:
    """A bounded, thread-safe map of message id → link, least recently used out first."""

    def __init__(self, limit: int = CACHE_MESSAGES) -> None:
        self._links: OrderedDict[str, MessageLink] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, message_id: str) -> MessageLink | None:
        """The cached link, or None."""
        with self._lock:
            link = self._links.get(message_id)
            if link is not None:
                self._links.move_to_end(message_id)
            return link

    def put(self, link: MessageLink) -> None:
        """Keep a link (evicting the least recently used beyond the limit)."""
        with self._lock:
            self._links[link.message_id] = link
            self._links.move_to_end(link.message_id)
            while len(self._links) > self._limit:
                self._links.popitem(last=False)


class InMemoryMessageStore:
    """The reference implementation, for tests and in-process sessions."""

    def __init__(self) -> None:
        self._rows: dict[str, MessageLink] = {}
        self._lock = threading.Lock()

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""
        message_id = uuid.uuid4().hex
        with self._lock:
            self._rows[message_id] = MessageLink(
                message_id=message_id, parent_id=parent_id, step=step
            )
        return message_id

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order."""
        return [link.step for link in links_since(self, head, ())]

    def get(self, message_id: str) -> Step:
        """One stored message."""
        return self._rows[message_id].step

    def link(self, message_id: str) -> MessageLink:
        """One stored message with its predecessor's id."""
        return self._rows[message_id]

    def close(self) -> None:
        """Nothing to release."""


class SqliteMessageStore:
    """Messages in a SQLite file (WAL), shared by the threads of the driver process; the messages
    written or read recently are also kept in memory, so a step reads none back from the file."""

    def __init__(self, path: Path | str, cache: int = CACHE_MESSAGES) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._cache = LinkCache(cache)

    def append(self, parent_id: str | None, step: Step) -> str:
        """Store a step after `parent_id`; returns the new message id."""
        message_id = uuid.uuid4().hex
        with self._lock:
            self._conn.execute(
                "INSERT INTO messages VALUES (?, ?, ?)",
                (message_id, parent_id, step.model_dump_json()),
            )
        self._cache.put(MessageLink(message_id=message_id, parent_id=parent_id, step=step))
        return message_id

    def chain(self, head: str | None) -> list[Step]:
        """Every step from the first message up to `head`, in order (from memory when cached,
        else one recursive query that also fills the cache: see `link`)."""
        return [link.step for link in links_since(self, head, ())]

    def get(self, message_id: str) -> Step:
        """One stored message."""
        return self.link(message_id).step

    def link(self, message_id: str) -> MessageLink:
        """One stored message with its predecessor's id (a miss loads its whole chain, which is
        what the caller walks next)."""
        link = self._cache.get(message_id)
        if link is None:
            self._load_chain(message_id)
            link = self._cache.get(message_id)
        if link is None:
            raise KeyError(f"no message {message_id} in the message store")
        return link

    def _load_chain(self, head: str) -> None:
        with self._lock:
            rows = self._conn.execute(_CHAIN, (head,)).fetchall()
        for message_id, parent_id, step_json in rows:
            step = Step.model_validate_json(step_json)
            self._cache.put(MessageLink(message_id=message_id, parent_id=parent_id, step=step))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class HostMessages:
    """What the driver has sent each host, so a request carries only the messages that host lacks.

    A host that lost its cache (restarted, evicted) answers with `TranscriptMissError`; the caller
    then `forget`s that host and sends again, in full.
    """

    def __init__(self, store: MessageStore, limit: int = CACHE_MESSAGES) -> None:
        self.store = store
        self._limit = limit
        self._sent: dict[object, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def ref(self, host: object, head: str | None, plan_id: str | None) -> TranscriptRef:
        """The transcript (up to `head`) and plan by reference, for one host."""
        sent: dict[str, None] = self._sent.get(host, {})  # membership reads only: no lock
        links = links_since(self.store, head, sent)
        if plan_id is not None:  # the plan is in the chain, or a ledger message of its own
            known = ChainMap(sent, dict.fromkeys(x.message_id for x in links))
            links += links_since(self.store, plan_id, known)
        return TranscriptRef(head=head, plan_id=plan_id, links=tuple(links))

    def sent(self, host: object, ref: TranscriptRef) -> None:
        """Note that `host` now has every message of `ref` (call after it answered)."""
        with self._lock:
            sent = self._sent.setdefault(host, OrderedDict())
            for message_id in (ref.head, ref.plan_id, *(x.message_id for x in ref.links)):
                if message_id is not None:
                    sent[message_id] = None
                    sent.move_to_end(message_id)
            while len(sent) > self._limit:
                sent.popitem(last=False)

    def forget(self, host: object) -> None:
        """The host has nothing: its next request carries the whole transcript."""
        with self._lock:
            self._sent.pop(host, None)
