"""LangGraph's checkpointer conformance suite against every saver configuration we ship.

The suite (`langgraph-checkpoint-conformance`) drives savers through their async methods only.
Our graphs use the savers' sync methods, and the sync SqliteSaver / PostgresSaver do not
implement the async ones, so each configuration is checked twice:

- `sync-*`: the exact saver `open_checkpointer` returns, seen through `threaded_async_view`,
  which runs each async call as the matching sync call in a worker thread and exposes only the
  methods the saver itself implements (so capability detection is unchanged);
- `async-*`: LangGraph's async variant of the same saver with the same configuration
  (AsyncSqliteSaver on a WAL file; AsyncPostgresSaver on a pool with autocommit,
  prepare_threshold=0 and dict_row; InMemorySaver's own async methods).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver

from branchpoint.orchestrator.checkpoints import open_checkpointer

# async method -> the sync method it mirrors (alist is handled on its own: it is a generator).
_ASYNC_TO_SYNC = {
    "aget_tuple": "get_tuple",
    "aput": "put",
    "aput_writes": "put_writes",
    "adelete_thread": "delete_thread",
    "adelete_for_runs": "delete_for_runs",
    "acopy_thread": "copy_thread",
    "aprune": "prune",
}


def _overrides(saver: BaseCheckpointSaver, method: str) -> bool:
    return getattr(type(saver), method) is not getattr(BaseCheckpointSaver, method)


def _in_thread(name: str) -> Callable[..., Any]:
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.inner, name), *args, **kwargs)

    return call


async def _alist_in_thread(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
    for item in await asyncio.to_thread(lambda: list(self.inner.list(*args, **kwargs))):
        yield item


def threaded_async_view(saver: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """An async facade of a sync saver, with exactly the capabilities the saver implements."""
    methods: dict[str, Any] = {
        name: _in_thread(sync) for name, sync in _ASYNC_TO_SYNC.items() if _overrides(saver, sync)
    }
    if _overrides(saver, "list"):
        methods["alist"] = _alist_in_thread
    view_type = type(f"Threaded{type(saver).__name__}", (BaseCheckpointSaver,), methods)
    view = view_type(serde=saver.serde)
    view.inner = saver  # type: ignore[attr-defined]
    return view


@asynccontextmanager
async def _async_sqlite(path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with aiosqlite.connect(str(path), timeout=30.0) as conn:
        await conn.execute("PRAGMA journal_mode=WAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver


@asynccontextmanager
async def _async_postgres(url: str) -> AsyncIterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(url, max_size=16, kwargs=kwargs, open=False) as pool:
        await pool.wait(timeout=10)
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        yield saver


@asynccontextmanager
async def _async_memory() -> AsyncIterator[BaseCheckpointSaver]:
    yield InMemorySaver()


@asynccontextmanager
async def _sync_view(spec: str, path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    with open_checkpointer(spec, path) as saver:
        yield threaded_async_view(saver)


def _run_suite(name: str, make: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
    """Run the whole suite; fail with every failing case's message."""

    @checkpointer_test(name=name)
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with make() as saver:  # a fresh saver (and sqlite file) per capability suite
            yield saver

    report = asyncio.run(validate(factory))
    report.print_report()
    failures = [
        f"{cap}: {failure}" for cap, result in report.results.items() for failure in result.failures
    ]
    assert report.passed_all_base(), failures
    assert report.passed_all(), failures
    ran = sum(r.tests_passed for r in report.results.values())
    assert ran > 50, f"only {ran} conformance cases ran"


@pytest.mark.parametrize("spec", ["sqlite", "memory"])
def test_sync_saver_conforms(spec: str, tmp_path: Path) -> None:
    _run_suite(
        f"sync-{spec}",
        lambda: _sync_view(spec, tmp_path / f"{uuid.uuid4().hex}" / "checkpoints.sqlite"),
    )


@pytest.mark.postgres
def test_sync_postgres_saver_conforms(postgres_url: str, tmp_path: Path) -> None:
    _run_suite("sync-postgres", lambda: _sync_view(postgres_url, tmp_path / "unused.sqlite"))


def test_async_sqlite_saver_conforms(tmp_path: Path) -> None:
    _run_suite("async-sqlite", lambda: _async_sqlite(tmp_path / f"{uuid.uuid4().hex}.sqlite"))


def test_async_memory_saver_conforms() -> None:
    _run_suite("async-memory", _async_memory)


@pytest.mark.postgres
def test_async_postgres_saver_conforms(postgres_url: str) -> None:
    _run_suite("async-postgres", lambda: _async_postgres(postgres_url))


def test_threaded_view_exposes_only_what_the_saver_implements(tmp_path: Path) -> None:
    with open_checkpointer("sqlite", tmp_path / "c.sqlite") as saver:
        view = threaded_async_view(saver)
    cls = type(view)
    assert cls.aput is not BaseCheckpointSaver.aput
    assert cls.alist is not BaseCheckpointSaver.alist
    # SqliteSaver has no copy_thread, so the view must not claim acopy_thread.
    assert cls.acopy_thread is BaseCheckpointSaver.acopy_thread
