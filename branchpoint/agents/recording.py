"""Record and replay of LLM calls, keyed by a hash of the request.

`RecordingClient` wraps any autogen chat-completion client. In `record` mode it answers from the
store when the exact request was seen before and otherwise calls the model and stores the answer;
in `replay` mode it never calls a model and an unrecorded request is a `ReplayMissError`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from autogen_core import CancellationToken
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelInfo,
)
from autogen_core.tools import Tool, ToolSchema

from branchpoint.agents.chat_client import TEXT_MODEL_INFO, TextChatClient
from branchpoint.errors import ReplayMissError

RecordMode = Literal["record", "replay"]


class RecordStore(Protocol):
    """Where LLM request/response records live (the trace database, a JSONL file, memory).

    Async, because the caller is a model client on an event loop that many agent turns share.
    """

    async def get(self, request_hash: str) -> dict[str, Any] | None:
        """The record stored under this hash, or None."""

    async def put(self, request_hash: str, record: dict[str, Any]) -> None:
        """Store a record; storing the same hash twice keeps one."""


class MemoryRecordStore:
    """In-memory record store, for tests."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    async def get(self, request_hash: str) -> dict[str, Any] | None:
        """The record stored under this hash, or None."""
        return self.records.get(request_hash)

    async def put(self, request_hash: str, record: dict[str, Any]) -> None:
        """Store a record."""
        self._keep(request_hash, record)

    def _keep(self, request_hash: str, record: dict[str, Any]) -> None:
        self.records.setdefault(request_hash, record)


class JsonlRecordStore(MemoryRecordStore):
    """Records in a JSONL file (one `{"hash": ..., "record": ...}` per line): test fixtures."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.records[row["hash"]] = row["record"]

    def _keep(self, request_hash: str, record: dict[str, Any]) -> None:
        """Store a record and append it to the file."""
        with self._lock:
            if request_hash in self.records:
                return
            self.records[request_hash] = record
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"hash": request_hash, "record": record}) + "\n")


class TraceRecordStore:
    """Adapts a telemetry TraceStore (DuckDB file or sink actor) to the RecordStore protocol.

    The store's calls block (a DuckDB statement or a round trip to the sink actor), so they run
    in a worker thread and the event loop keeps serving other agent turns meanwhile. With
    `write_behind` (an agent host talking to the sink), a turn does not wait for its record to
    be stored: records are sent in batches (up to WRITE_BATCH records, or whatever is pending
    WRITE_DELAY seconds after the first), one round trip per batch instead of one per turn; this
    store answers for a record until it is confirmed, and `drain` (the host's flush) sends what
    is pending, waits for every write and raises a failed one. A host that dies loses the
    records it had not sent (at most WRITE_DELAY's worth): a replay of those steps reports the
    miss.
    """

    WRITE_BATCH = 64
    WRITE_DELAY = 0.05

    def __init__(self, trace_store: Any, write_behind: bool = False) -> None:
        self.trace_store = trace_store
        self.write_behind = write_behind
        self._unconfirmed: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}  # not sent yet
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def get(self, request_hash: str) -> dict[str, Any] | None:
        """The record stored under this hash, or None."""
        if request_hash in self._unconfirmed:
            return self._unconfirmed[request_hash]
        record: dict[str, Any] | None = await asyncio.to_thread(
            self.trace_store.get_llm_record, request_hash
        )
        return record

    async def put(self, request_hash: str, record: dict[str, Any]) -> None:
        """Store a record in the trace database (in the background with `write_behind`)."""
        # The trace database keeps model, request and response; the hashed params (for the sim,
        # every earlier message of the run) would only make each step's round trip grow.
        kept = {k: v for k, v in record.items() if k != "params"}
        if not self.write_behind:
            await asyncio.to_thread(self.trace_store.put_llm_record, request_hash, kept)
            return
        if request_hash in self._unconfirmed:
            return  # the first record of a hash stays (as in the trace database)
        self._unconfirmed[request_hash] = self._pending[request_hash] = kept
        if len(self._pending) >= self.WRITE_BATCH:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.WRITE_DELAY, self._send)

    def _send(self) -> None:
        """Start writing the pending records as one batch."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: dict[str, dict[str, Any]]) -> None:
        try:
            await asyncio.to_thread(self.trace_store.put_llm_records, batch)
        except Exception as exc:  # noqa: BLE001 - kept for `drain`: the next flush raises it
            self._failure = self._failure or exc
        else:
            for request_hash in batch:
                self._unconfirmed.pop(request_hash, None)

    async def drain(self) -> None:
        """Send what is pending, wait until every record written in the background is stored;
        raise a failed write."""
        while self._writes or self._pending:  # a turn may store a record while we wait
            self._send()
            await asyncio.gather(*list(self._writes))
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


def message_to_json(message: LLMMessage) -> dict[str, Any]:
    """A stable JSON form of one autogen LLM message."""
    data = message.model_dump(mode="json")
    return {k: v for k, v in sorted(data.items()) if v is not None}


def request_hash(model: str, messages: Sequence[LLMMessage], params: Mapping[str, Any]) -> str:
    """Hash of everything that determines a model's answer: model, messages, sampling params."""
    return _hash_request(model, [message_to_json(m) for m in messages], params)


def _hash_request(model: str, request: list[dict[str, Any]], params: Mapping[str, Any]) -> str:
    return hashlib.sha256(request_json(model, request, params).encode()).hexdigest()


def request_json(model: str, request: list[dict[str, Any]], params: Mapping[str, Any]) -> str:
    """The text a request's hash covers: exactly `json.dumps` of {"model", "messages", "params"}
    with sorted keys, compact separators and `default=str` (recordings are keyed by its hash).

    Built from parts, because most of a request is the same from one turn to the next: each
    message's JSON is cached by its fields, and a long string (the plan, which a sim request
    carries in a message and again in its parameters) by its text. A run of 1,000 items spent
    ~0.2 ms a step encoding its plan twice (benchmarks/RESULTS.md, "Session 15").
    """
    messages = ",".join(_message_json(m) for m in request)
    return f'{{"messages":[{messages}],"model":{_json(model)},"params":{_value_json(params)}}}'


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# Characters: a string this long is looked up instead of encoded again, up to the longest one
# kept (the caches hold at most ~32 long strings and ~1,024 short messages, with their JSON).
_LONG, _LONGEST_KEPT = 1024, 256 * 1024


@functools.lru_cache(maxsize=1024)
def _fields_json(fields: tuple[tuple[str, str], ...]) -> str:
    return _json(dict(fields))


@functools.lru_cache(maxsize=32)
def _long_json(text: str) -> str:
    return json.dumps(text)


def _message_json(message: dict[str, Any]) -> str:
    """One message's JSON; a message of short string fields is encoded once."""
    if all(type(k) is str and type(v) is str and len(v) < _LONG for k, v in message.items()):
        return _fields_json(tuple(message.items()))
    return _value_json(message)


def _value_json(value: Any) -> str:
    """`_json(value)`, with long strings looked up. Lists, tuples and dicts of string keys are
    walked; anything else (and any dict with a key of another type, which `json` sorts and
    converts itself) is handed to `json` whole."""
    kind = type(value)
    if kind is str:
        return _long_json(value) if _LONG <= len(value) <= _LONGEST_KEPT else json.dumps(value)
    if kind is int or kind is float or kind is bool or value is None:
        return json.dumps(value)  # the default encoder: no encoder built for a number
    if kind is list or kind is tuple:
        return "[" + ",".join(_value_json(v) for v in value) + "]"
    if kind is dict and all(type(k) is str for k in value):
        items = sorted(value.items())
        return "{" + ",".join(f"{json.dumps(k)}:{_value_json(v)}" for k, v in items) + "}"
    return _json(value)


class RecordingClient(TextChatClient):
    """A chat-completion client that records every response and can replay them exactly."""

    def __init__(
        self,
        inner: ChatCompletionClient | None,
        store: RecordStore,
        model: str,
        mode: RecordMode = "record",
        hash_extra: Mapping[str, Any] | None = None,
        lookup: bool = True,
    ) -> None:
        self.inner = inner
        self.store = store
        self.model = model
        self.mode = mode
        self.hash_extra = dict(hash_extra or {})
        # False: in record mode, always ask the model (for a deterministic, free one such as the
        # sim, whose hash covers every input, a lookup is a round trip that finds the same answer).
        self.lookup = lookup
        self.last_hash: str | None = None
        self.last_cached = False
        super().__init__()

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
        """Answer from the store when recorded; otherwise call the model (record mode only)."""
        params = {**self.hash_extra, **extra_create_args}
        if tools:  # only calls that offer tools hash them, so text calls keep their old hashes
            params["tools"] = [t.schema if isinstance(t, Tool) else t for t in tools]
        request = [message_to_json(m) for m in messages]
        key = _hash_request(self.model, request, params)
        self.last_hash = key
        record = await self.store.get(key) if self.lookup or self.mode == "replay" else None
        if record is not None:
            self.last_cached = True
            result = CreateResult.model_validate({**record["response"], "cached": True})
        elif self.mode == "replay" or self.inner is None:
            raise ReplayMissError(
                f"no recorded response for request {key[:12]} of model {self.model}; "
                "record the run first (replay needs every LLM call to be in the store)"
            )
        else:
            self.last_cached = False
            result = await self.inner.create(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
            await self.store.put(
                key,
                {
                    "model": self.model,
                    "request": request,
                    "params": params,
                    "response": result.model_dump(mode="json"),
                },
            )
        self._account(result.usage)
        return result

    async def close(self) -> None:
        """Close the wrapped client."""
        if self.inner is not None:
            await self.inner.close()

    @property
    def model_info(self) -> ModelInfo:
        """The wrapped client's model info, or a plain text-only one."""
        return self.inner.model_info if self.inner is not None else TEXT_MODEL_INFO
