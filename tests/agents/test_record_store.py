"""The trace record store's write-behind: a turn does not wait for its record, a flush does;
records travel to the store in batches, one round trip each."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from branchpoint.agents.recording import TraceRecordStore


class SlowStore:
    """A trace store whose writes wait until the test lets them through."""

    def __init__(self, fail: bool = False) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.release = threading.Event()
        self.fail = fail
        self.round_trips = 0

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        self.put_llm_records({request_hash: record})

    def put_llm_records(self, records: dict[str, dict[str, Any]]) -> None:
        self.round_trips += 1
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("the sink is gone")
        self.rows.update(records)

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        return self.rows.get(request_hash)


RECORD = {"model": "m", "request": [], "params": {"sim": [1, 2]}, "response": {"content": "x"}}


def test_put_returns_before_the_write_and_drain_waits_for_it() -> None:
    async def scenario() -> None:
        slow = SlowStore()
        store = TraceRecordStore(slow, write_behind=True)
        await asyncio.wait_for(store.put("h", RECORD), 1)  # does not wait for the sink
        assert slow.rows == {}
        assert (await store.get("h")) == {k: v for k, v in RECORD.items() if k != "params"}
        slow.release.set()
        await store.drain()
        assert set(slow.rows) == {"h"} and "params" not in slow.rows["h"]

    asyncio.run(scenario())


def test_a_failed_background_write_is_raised_by_drain() -> None:
    async def scenario() -> None:
        slow = SlowStore(fail=True)
        slow.release.set()
        store = TraceRecordStore(slow, write_behind=True)
        await store.put("h", RECORD)
        with pytest.raises(RuntimeError, match="the sink is gone"):
            await store.drain()
        assert (await store.get("h")) is not None  # still answered here, never confirmed
        await store.drain()  # reported once

    asyncio.run(scenario())


def test_without_write_behind_put_waits_for_the_store() -> None:
    async def scenario() -> None:
        slow = SlowStore()
        slow.release.set()
        store = TraceRecordStore(slow)
        await store.put("h", RECORD)
        assert "h" in slow.rows

    asyncio.run(scenario())


def test_records_travel_in_batches_sent_when_full_or_after_a_delay() -> None:
    async def scenario() -> None:
        slow = SlowStore()
        slow.release.set()
        store = TraceRecordStore(slow, write_behind=True)
        for i in range(TraceRecordStore.WRITE_BATCH + 3):
            await store.put(f"h{i}", RECORD)
        await asyncio.sleep(0)  # the full batch is on its way; the last 3 wait for the delay
        await asyncio.sleep(TraceRecordStore.WRITE_DELAY / 5)
        assert (slow.round_trips, len(slow.rows)) == (1, TraceRecordStore.WRITE_BATCH)
        await asyncio.sleep(TraceRecordStore.WRITE_DELAY + 0.2)
        assert (slow.round_trips, len(slow.rows)) == (2, TraceRecordStore.WRITE_BATCH + 3)
        await store.put("late", RECORD)
        await store.drain()  # a flush sends what is pending without waiting for the delay
        assert slow.round_trips == 3 and "late" in slow.rows

    asyncio.run(scenario())


def test_a_record_stored_while_drain_waits_is_sent_by_that_drain() -> None:
    async def scenario() -> None:
        slow = SlowStore()
        store = TraceRecordStore(slow, write_behind=True)
        await store.put("a", RECORD)
        draining = asyncio.ensure_future(store.drain())
        await asyncio.sleep(0.01)  # drain is waiting on the write of "a"
        await store.put("b", RECORD)  # a turn that finished meanwhile
        slow.release.set()
        await draining
        assert set(slow.rows) == {"a", "b"}

    asyncio.run(scenario())


def test_the_first_record_of_a_hash_is_the_one_sent_and_answered() -> None:
    async def scenario() -> None:
        slow = SlowStore()
        slow.release.set()
        store = TraceRecordStore(slow, write_behind=True)
        first = {**RECORD, "response": {"content": "first"}}
        await store.put("h", first)
        await store.put("h", {**RECORD, "response": {"content": "second"}})
        got = await store.get("h")
        assert got is not None and got["response"] == {"content": "first"}
        await store.drain()
        assert slow.rows["h"]["response"] == {"content": "first"}

    asyncio.run(scenario())
