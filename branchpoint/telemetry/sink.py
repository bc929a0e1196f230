"""The single writer of a trace database: a Ray actor that owns its DuckDB connection.

DuckDB allows one read-write process per file. `TraceSink` is that process for a cluster: every
driver, worker and agent actor, on any node, sends spans and rows to it through `SinkClient`,
so no node needs a shared filesystem. Read-only queries during a live run come here too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from branchpoint.telemetry.readonly import InvalidQueryError, read_statements
from branchpoint.telemetry.store import DuckDBTraceStore

NAMESPACE = "branchpoint"


def sink_name(db_path: str | Path) -> str:
    """The actor name of the sink for a database file (stable per resolved path)."""
    resolved = str(Path(db_path).resolve())
    return "trace-sink-" + hashlib.sha256(resolved.encode()).hexdigest()[:16]


class TraceSink:
    """Holds the only read-write connection to one trace database."""

    def __init__(self, db_path: str) -> None:
        self._store = DuckDBTraceStore(db_path)
        self.db_path = db_path

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows idempotently."""
        return self._store.write_spans(rows)

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Upsert pipeline rows."""
        return self._store.write_rows(table, rows)

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL on the writable connection (trusted callers only)."""
        return self._store.query(sql, params)

    def read_only_query(
        self, sql: str, params: list[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Vet `sql` as read-only, then run it in a transaction that is rolled back."""
        statements = read_statements(sql)
        try:
            return self._store.read_only_query(statements, params)
        except duckdb.Error as exc:
            raise InvalidQueryError(f"{exc}; fix the query (see SHOW TABLES)") from None

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record an LLM call."""
        self._store.put_llm_record(request_hash, record)

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """A recorded LLM call, or None."""
        return self._store.get_llm_record(request_hash)

    def close(self) -> None:
        """Close the database (the actor can then be killed without a recovery on reopen)."""
        self._store.close()


_RemoteSink: Any = ray.remote(num_cpus=0)(TraceSink)


def get_or_create_sink(db_path: str | Path) -> ActorHandle:
    """The live sink for `db_path`, started on this node (where the file is) if there is none.

    Its lifetime is tied to the driver that creates it.
    """
    handle: ActorHandle = _RemoteSink.options(
        name=sink_name(db_path),
        namespace=NAMESPACE,
        get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=False
        ),
    ).remote(str(Path(db_path).resolve()))
    return handle


def find_sink(db_path: str | Path) -> Any:
    """The live sink (an ActorHandle) for `db_path` in the connected cluster, or None."""
    try:
        return ray.get_actor(sink_name(db_path), namespace=NAMESPACE)
    except ValueError:
        return None


def close_sink(handle: Any) -> None:
    """Close the sink's database cleanly, then stop the actor."""
    ray.get(handle.close.remote())
    ray.kill(handle)


class SinkClient:
    """A `TraceStore` that forwards every call to a `TraceSink` actor."""

    def __init__(self, handle: ActorHandle) -> None:
        self.handle: Any = handle

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows idempotently in the sink (an Arrow table travels without pickling
        each row)."""
        return int(ray.get(self.handle.write_spans.remote(rows)))

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Upsert pipeline rows in the sink."""
        return int(ray.get(self.handle.write_rows.remote(table, rows)))

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL in the sink."""
        result: list[dict[str, Any]] = ray.get(self.handle.query.remote(sql, params))
        return result

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record an LLM call in the sink."""
        ray.get(self.handle.put_llm_record.remote(request_hash, record))

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """A recorded LLM call from the sink, or None."""
        result: dict[str, Any] | None = ray.get(self.handle.get_llm_record.remote(request_hash))
        return result

    def close(self) -> None:
        """Nothing to release: the sink outlives its clients (see `close_sink`)."""
