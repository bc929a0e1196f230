"""A host's cache of step messages: transcripts sent by reference are resolved here.

The driver sends each host only the messages it has not sent that host before (`TranscriptRef`).
The host keeps them by id, each with the chain that ends in it, so resolving a transcript costs
the new messages, not the run's length. Chains share storage: a message's chain is a prefix of a
list that its successors extend in place; a fork (a second successor) copies the prefix once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from branchpoint.model import MessageLink, Step, StepRequest, TranscriptRef

# Messages a host keeps; a request whose messages were evicted is sent again in full.
HOST_CACHE_MESSAGES = 100_000
# Transcripts a `PrefixFold` remembers (about one per run a process is running at once).
FOLD_MEMO = 512
# How many steps shorter a remembered transcript may be (an agent's turns come a few steps apart).
FOLD_LOOKBACK = 32

T = TypeVar("T")


class TranscriptMissError(Exception):
    """The host does not have a message the request refers to; the driver resends in full."""


class TranscriptCache:
    """Message id → (the list holding its chain, the chain's length), least recently used out.

    `fetch`, when given (an in-process runtime beside the driver's message store), loads a
    message the cache lacks; without it (a Ray host) a miss is a `TranscriptMissError`.
    """

    def __init__(
        self,
        limit: int = HOST_CACHE_MESSAGES,
        fetch: Callable[[str], MessageLink] | None = None,
    ) -> None:
        self._nodes: OrderedDict[str, tuple[list[Step], int]] = OrderedDict()
        self._limit = limit
        self._fetch = fetch
        self._lock = threading.Lock()

    def add(self, link: MessageLink) -> None:
        """Keep one message; its predecessor must be known (or None)."""
        with self._lock:
            if link.message_id in self._nodes:
                self._nodes.move_to_end(link.message_id)
                return
            if link.parent_id is None:
                chain, length = [link.step], 1
            else:
                chain, length = self._node(link.parent_id)
                if len(chain) != length:  # the predecessor already has a successor: a branch
                    chain = chain[:length]
                chain.append(link.step)
                length += 1
            self._nodes[link.message_id] = (chain, length)
            while len(self._nodes) > self._limit:
                self._nodes.popitem(last=False)

    def chain(self, head: str | None) -> tuple[Step, ...]:
        """Every step up to `head`, in order."""
        if head is None:
            return ()
        self._load(head)
        with self._lock:
            chain, length = self._node(head)
            return tuple(chain[:length])

    def step(self, message_id: str) -> Step:
        """One message."""
        self._load(message_id)
        with self._lock:
            chain, length = self._node(message_id)
            return chain[length - 1]

    def _load(self, message_id: str | None) -> None:
        """Fetch a missing message and its missing predecessors (when there is a `fetch`)."""
        if self._fetch is None:
            return
        missing: list[MessageLink] = []
        while message_id is not None and message_id not in self._nodes:
            link = self._fetch(message_id)
            missing.append(link)
            message_id = link.parent_id
        for link in reversed(missing):
            self.add(link)

    def _node(self, message_id: str) -> tuple[list[Step], int]:
        node = self._nodes.get(message_id)
        if node is None:
            raise TranscriptMissError(f"message {message_id} is not in this host's cache")
        self._nodes.move_to_end(message_id)
        return node

    def resolve(self, ref: TranscriptRef) -> tuple[tuple[Step, ...], str | None]:
        """(the transcript up to `ref.head`, the plan's text) after keeping `ref.links`."""
        for link in ref.links:
            self.add(link)
        plan = self.step(ref.plan_id).content if ref.plan_id is not None else None
        return self.chain(ref.head), plan

    def complete(self, req: StepRequest) -> StepRequest:
        """The request with its transcript and plan filled in from `req.messages`."""
        if req.messages is None:
            return req
        transcript, plan = self.resolve(req.messages)
        return req.model_copy(update={"transcript": transcript, "plan": plan, "messages": None})


class PrefixFold(Generic[T]):
    """`value = add(...add(add(start, s0), s1)..., sn)` over a transcript's steps, reusing the
    value of the longest start of it (up to `FOLD_LOOKBACK` steps shorter) folded before.

    Consecutive turns of a run see transcripts that grow by a few steps, so each turn folds its
    new steps only. A remembered prefix is used only when it equals the transcript's start
    (compared element by element in C; identical Step objects compare at once), so any caller
    gets the full fold's value. `add` must not change its arguments.
    """

    def __init__(self, start: T, add: Callable[[T, Step], T], size: int = FOLD_MEMO) -> None:
        self._start = start
        self._add = add
        self._size = size
        self._memo: OrderedDict[int, tuple[tuple[Step, ...], T]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, transcript: Sequence[Step]) -> T:
        steps = tuple(transcript)
        value, known = self._start, 0
        with self._lock:
            for n in range(len(steps), max(0, len(steps) - FOLD_LOOKBACK), -1):
                hit = self._memo.get(id(steps[n - 1]))
                if hit is not None and len(hit[0]) == n and hit[0] == steps[:n]:
                    value, known = hit[1], n
                    break
        for step in steps[known:]:
            value = self._add(value, step)
        if steps and known < len(steps):
            with self._lock:
                self._memo[id(steps[-1])] = (steps, value)
                self._memo.move_to_end(id(steps[-1]))
                while len(self._memo) > self._size:
                    self._memo.popitem(last=False)
        return value
