"""open_checkpointer with a real LangGraph graph: a checkpoint per step, forks, threads, storage growth."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from branchpoint.orchestrator import checkpoints
from branchpoint.orchestrator.checkpoints import (
    CheckpointerConfigError,
    checkpointer_kind,
    open_checkpointer,
    redact_url,
)


class Calc(TypedDict):
    value: int
    note: str


def calc_graph(saver: BaseCheckpointSaver, calls: Counter[str]) -> Any:
    """double -> add_one -> finish, counting how often each node really runs."""

    def double(state: Calc) -> dict[str, Any]:
        calls["double"] += 1
        return {"value": state["value"] * 2}

    def add_one(state: Calc) -> dict[str, Any]:
        calls["add_one"] += 1
        return {"value": state["value"] + 1}

    def finish(state: Calc) -> dict[str, Any]:
        calls["finish"] += 1
        return {"note": f"result={state['value']}"}

    builder = StateGraph(Calc)
    builder.add_node("double", double)
    builder.add_node("add_one", add_one)
    builder.add_node("finish", finish)
    builder.add_edge(START, "double")
    builder.add_edge("double", "add_one")
    builder.add_edge("add_one", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=saver)


def lineage(graph: Any, config: dict[str, Any]) -> list[Any]:
    """The snapshots from `config`'s checkpoint back to the first, following parent links."""
    chain = []
    current: dict[str, Any] | None = config
    while current is not None:
        snapshot = graph.get_state(current)
        chain.append(snapshot)
        current = snapshot.parent_config
    return chain


@pytest.fixture(params=["sqlite", "memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver]:
    spec = request.getfixturevalue("postgres_url") if request.param == "postgres" else request.param
    with open_checkpointer(spec, tmp_path / "cp" / "checkpoints.sqlite") as opened:
        yield opened


def _thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def test_every_step_has_a_checkpoint(saver: BaseCheckpointSaver, request: Any) -> None:
    calls: Counter[str] = Counter()
    graph = calc_graph(saver, calls)
    thread = _thread(f"every-step-{request.node.callspec.id}")
    graph.invoke({"value": 3, "note": ""}, thread, durability="sync")

    history = list(graph.get_state_history(thread))  # newest first
    steps = [s.metadata["step"] for s in reversed(history)]
    assert steps == [-1, 0, 1, 2, 3]
    assert [s.next for s in reversed(history)] == [
        ("__start__",),
        ("double",),
        ("add_one",),
        ("finish",),
        (),
    ]
    assert [s.values.get("value") for s in reversed(history)] == [None, 3, 6, 7, 7]
    assert history[0].values == {"value": 7, "note": "result=7"}
    assert calls == Counter(double=1, add_one=1, finish=1)


def test_fork_from_a_middle_checkpoint_makes_a_branch(
    saver: BaseCheckpointSaver, request: Any
) -> None:
    calls: Counter[str] = Counter()
    graph = calc_graph(saver, calls)
    thread = _thread(f"fork-{request.node.callspec.id}")
    graph.invoke({"value": 3, "note": ""}, thread, durability="sync")
    original_end = graph.get_state(thread).config
    after_double = next(s for s in graph.get_state_history(thread) if s.next == ("add_one",))

    fork_config = graph.update_state(after_double.config, {"value": 100}, as_node="double")
    graph.invoke(None, fork_config, durability="sync")
    fork_end = graph.get_state(thread).config  # the fork was written last

    # Nodes before the fork point were not re-run.
    assert calls == Counter(double=1, add_one=2, finish=2)
    fork_chain = lineage(graph, fork_end)
    original_chain = lineage(graph, original_end)
    assert [s.values.get("value") for s in fork_chain] == [101, 101, 100, 6, 3, None]
    assert fork_chain[0].values["note"] == "result=101"
    assert fork_chain[2].metadata["source"] == "update"
    # The original branch is intact, and both share the checkpoints up to the fork point.
    assert [s.values.get("value") for s in original_chain] == [7, 7, 6, 3, None]
    assert original_chain[0].values["note"] == "result=7"
    shared = [s.config["configurable"]["checkpoint_id"] for s in original_chain[2:]]
    assert [s.config["configurable"]["checkpoint_id"] for s in fork_chain[3:]] == shared
    fork_point = after_double.config["configurable"]["checkpoint_id"]
    assert fork_chain[3].config["configurable"]["checkpoint_id"] == fork_point
    assert len(list(graph.get_state_history(thread))) == 5 + 3


def test_threads_share_one_sqlite_saver(tmp_path: Path) -> None:
    with open_checkpointer("sqlite", tmp_path / "new" / "dir" / "c.sqlite") as saver:
        assert isinstance(saver.conn, sqlite3.Connection)  # type: ignore[attr-defined]
        mode = saver.conn.execute("PRAGMA journal_mode").fetchone()[0]  # type: ignore[attr-defined]
        assert mode == "wal"
        graph = calc_graph(saver, Counter())

        def run(i: int) -> dict[str, Any]:
            return graph.invoke({"value": i, "note": ""}, _thread(f"t{i}"), durability="sync")

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, range(12)))
        assert [r["value"] for r in results] == [2 * i + 1 for i in range(12)]
        for i in range(12):
            assert len(list(graph.get_state_history(_thread(f"t{i}")))) == 5
    assert (tmp_path / "new" / "dir" / "c.sqlite").exists()


class Tick(TypedDict):
    count: int
    target: int
    note: str


def tick_graph(saver: BaseCheckpointSaver) -> Any:
    """One node looping on itself until `count` reaches `target`: O(1)-sized state."""
    builder = StateGraph(Tick)
    builder.add_node("tick", lambda s: {"count": s["count"] + 1, "note": f"tick {s['count']}"})
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", lambda s: "tick" if s["count"] < s["target"] else END)
    return builder.compile(checkpointer=saver)


def _stored_bytes(saver: BaseCheckpointSaver, thread_id: str) -> int:
    """Bytes of checkpoints, blobs and writes the saver stored for one thread."""
    if isinstance(saver.conn, sqlite3.Connection):  # type: ignore[attr-defined]
        row = saver.conn.execute(  # type: ignore[attr-defined]
            "SELECT (SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0)"
            "        FROM checkpoints WHERE thread_id = ?1)"
            "     + (SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?1)",
            (thread_id,),
        ).fetchone()
        return int(row[0])
    with saver.conn.connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_column_size(checkpoint) + pg_column_size(metadata)), 0)"
            "        FROM checkpoints WHERE thread_id = %(t)s)"
            "     + (SELECT coalesce(sum(octet_length(blob)), 0)"
            "        FROM checkpoint_blobs WHERE thread_id = %(t)s)"
            "     + (SELECT coalesce(sum(octet_length(blob)), 0)"
            "        FROM checkpoint_writes WHERE thread_id = %(t)s) AS n",
            {"t": thread_id},
        ).fetchone()
        return int(row["n"])


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_checkpoint_bytes_grow_linearly(kind: str, request: Any, tmp_path: Path) -> None:
    spec = request.getfixturevalue("postgres_url") if kind == "postgres" else kind
    n = 60
    with open_checkpointer(spec, tmp_path / "c.sqlite") as saver:
        graph = tick_graph(saver)
        sizes = {}
        for steps in (n, 2 * n):
            thread = {**_thread(f"linear-{kind}-{steps}"), "recursion_limit": steps + 10}
            final = graph.invoke(
                {"count": 0, "target": steps, "note": ""}, thread, durability="sync"
            )
            assert final["count"] == steps
            assert len(list(graph.get_state_history(thread))) == steps + 2
            sizes[steps] = _stored_bytes(saver, f"linear-{kind}-{steps}")
    ratio = sizes[2 * n] / sizes[n]
    print(
        f"\n{kind}: checkpoint bytes {n} steps={sizes[n]}, {2 * n} steps={sizes[2 * n]}, "
        f"ratio={ratio:.3f}"
    )
    assert 1.5 < ratio <= 2.2


def test_spec_kinds_and_errors(tmp_path: Path) -> None:
    assert checkpointer_kind("sqlite") == "sqlite"
    assert checkpointer_kind(" Memory ") == "memory"
    assert checkpointer_kind("postgresql://u:p@h:5432/db") == "postgres"
    assert checkpointer_kind("postgres://h/db") == "postgres"
    for bad in ("duckdb", "", "mysql://h/db", "sqlite:///x"):
        with pytest.raises(CheckpointerConfigError, match="Unknown checkpointer"):
            open_checkpointer(bad, tmp_path / "c.sqlite")


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://bob:s3cret@db.example:5433/bp") == (
        "postgresql://bob:***@db.example:5433/bp"
    )
    assert redact_url("postgresql://db.example/bp") == "postgresql://db.example/bp"


def test_unreachable_postgres_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(checkpoints, "POSTGRES_CONNECT_TIMEOUT_S", 1.0)
    url = "postgresql://bob:s3cret@127.0.0.1:9/nowhere"  # port 9 (discard) is closed here
    with (
        pytest.raises(CheckpointerConfigError, match="Cannot connect") as error,
        open_checkpointer(url, tmp_path / "c.sqlite"),
    ):
        pass
    assert "s3cret" not in str(error.value)
