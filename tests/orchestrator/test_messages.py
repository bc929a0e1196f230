"""The message store (both implementations), what the driver sends each host, and the host's cache.

One behaviour suite runs against the in-memory and the SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from branchpoint.agents.transcripts import TranscriptCache, TranscriptMissError
from branchpoint.model import MessageLink, Step, StepRequest, Task
from branchpoint.orchestrator.messages import (
    HostMessages,
    InMemoryMessageStore,
    MessageStore,
    SqliteMessageStore,
    links_since,
)


def step(i: int, agent: str = "Solver", run_id: str = "run-a") -> Step:
    return Step(run_id=run_id, index=i, agent=agent, kind="message", content=f"Item {i}")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MessageStore]:
    if request.param == "memory":
        yield InMemoryMessageStore()
        return
    sqlite = SqliteMessageStore(tmp_path / "m.sqlite")
    yield sqlite
    sqlite.close()


def append_chain(store: MessageStore, n: int, parent: str | None = None) -> list[str]:
    ids: list[str] = []
    for i in range(n):
        parent = store.append(parent, step(i))
        ids.append(parent)
    return ids


def test_chain_and_get(store: MessageStore) -> None:
    ids = append_chain(store, 5)
    assert [s.index for s in store.chain(ids[-1])] == [0, 1, 2, 3, 4]
    assert store.chain(None) == []
    assert store.get(ids[2]).content == "Item 2"
    assert store.link(ids[2]).parent_id == ids[1]


def test_fork_shares_prefix(store: MessageStore) -> None:
    ids = append_chain(store, 4)
    branch = store.append(ids[1], step(2, agent="Verifier"))
    assert [s.agent for s in store.chain(branch)] == ["Solver", "Solver", "Verifier"]
    assert len(store.chain(ids[-1])) == 4


def test_links_since_stops_at_known(store: MessageStore) -> None:
    ids = append_chain(store, 6)
    links = links_since(store, ids[-1], {ids[3]})
    assert [x.message_id for x in links] == ids[4:]
    assert [x.message_id for x in links_since(store, ids[-1], ())] == ids


def test_sqlite_store_reads_a_chain_written_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    writer = SqliteMessageStore(path)
    ids = append_chain(writer, 3)
    writer.close()
    reader = SqliteMessageStore(path)  # a new process: nothing cached
    assert [s.index for s in reader.chain(ids[-1])] == [0, 1, 2]
    assert reader.link(ids[0]).parent_id is None
    with pytest.raises(KeyError):
        reader.link("nope")
    reader.close()


def test_host_messages_sends_each_host_only_what_it_lacks(store: MessageStore) -> None:
    ids = append_chain(store, 5)
    hosts = HostMessages(store)
    first = hosts.ref("h1", ids[2], plan_id=ids[0])
    assert [x.message_id for x in first.links] == ids[:3]
    hosts.sent("h1", first)
    later = hosts.ref("h1", ids[4], plan_id=ids[0])
    assert [x.message_id for x in later.links] == ids[3:]
    assert len(hosts.ref("h2", ids[4], None).links) == 5  # another host has nothing yet
    hosts.forget("h1")
    assert len(hosts.ref("h1", ids[4], None).links) == 5


def test_host_messages_sends_a_ledger_plan_outside_the_chain(store: MessageStore) -> None:
    ids = append_chain(store, 2)
    ledger = store.append(None, step(1, agent="ledger"))
    ref = HostMessages(store).ref("h", ids[-1], plan_id=ledger)
    assert [x.message_id for x in ref.links] == [*ids, ledger]


def test_host_cache_resolves_incrementally_and_branches(store: MessageStore) -> None:
    ids = append_chain(store, 6)
    hosts, cache = HostMessages(store), TranscriptCache()
    for head in (ids[1], ids[3], ids[5]):  # the host sees every other step's request
        ref = hosts.ref("h", head, ids[0])
        transcript, plan = cache.resolve(ref)
        hosts.sent("h", ref)
        assert [s.index for s in transcript] == list(range(ids.index(head) + 1))
        assert plan == "Item 0"
    branch = store.append(ids[2], step(3, agent="Verifier"))
    ref = hosts.ref("h", branch, None)
    assert [x.message_id for x in ref.links] == [branch]
    transcript, _ = cache.resolve(ref)
    assert [s.agent for s in transcript][-2:] == ["Solver", "Verifier"]
    assert len(cache.chain(ids[5])) == 6  # the original branch is untouched


def test_host_cache_miss_and_complete() -> None:
    cache = TranscriptCache(limit=2)
    store = InMemoryMessageStore()
    ids = append_chain(store, 3)
    hosts = HostMessages(store)
    cache.resolve(hosts.ref("h", ids[-1], None))  # 3 messages into a cache of 2: the first goes
    with pytest.raises(TranscriptMissError):
        cache.chain(ids[0])
    request = StepRequest(
        run_id="run-a",
        team="math",
        step=3,
        agent="Solver",
        system_prompt="",
        task=Task(task_id="t", question="q"),
        transcript=(),
        model="sim",
        messages=hosts.ref("h2", ids[-1], ids[-1]),
    )
    full = TranscriptCache().complete(request)
    assert [s.index for s in full.transcript] == [0, 1, 2]
    assert full.plan == "Item 2" and full.messages is None


def test_host_cache_with_fetch_loads_what_it_lacks() -> None:
    store = InMemoryMessageStore()
    ids = append_chain(store, 4)
    fetched: list[str] = []

    def fetch(message_id: str) -> MessageLink:
        fetched.append(message_id)
        return store.link(message_id)

    cache = TranscriptCache(fetch=fetch)
    assert [s.index for s in cache.chain(ids[2])] == [0, 1, 2]
    assert cache.step(ids[3]).index == 3
    assert fetched == [ids[2], ids[1], ids[0], ids[3]]  # each message fetched once
