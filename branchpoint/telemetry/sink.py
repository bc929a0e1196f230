"""The single writer of a trace database: a Ray actor that owns its DuckDB connection.

DuckDB allows one read-write process per file. `TraceSink` is that process for a cluster: every
driver, worker and agent actor, on any node, sends spans and rows to it through `SinkClient`,
so no node needs a shared filesystem. Read-only queries during a live run come here too: the
sink records where it can be reached (`<db>.sink.json`: the Ray GCS address, namespace and
actor name) next to the database while it holds the file, so a query finds this cluster's sink
even when other Ray clusters run on the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import ray
from pydantic import BaseModel
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from branchpoint.errors import BranchpointError, first_line
from branchpoint.telemetry.query import query_error
from branchpoint.telemetry.readonly import read_statements
from branchpoint.telemetry.store import DuckDBTraceStore, TraceStorageError

NAMESPACE = "branchpoint"


def sink_name(db_path: str | Path) -> str:
    """The actor name of the sink for a database file (stable per resolved path)."""
    resolved = str(Path(db_path).resolve())
    return "trace-sink-" + hashlib.sha256(resolved.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SinkAddress:
    """Where the live sink of a database answers: recorded next to the file while it is open."""

    gcs_address: str
    namespace: str
    actor: str
    pid: int


def address_file(db_path: str | Path) -> Path:
    """`<db>.sink.json`: the live sink's address, present only while a sink holds the file."""
    path = Path(db_path).resolve()
    return path.with_name(path.name + ".sink.json")


def read_address(db_path: str | Path) -> SinkAddress | None:
    """The recorded address of the live sink for `db_path`, or None if none is recorded."""
    try:
        data = json.loads(address_file(db_path).read_text())
        return SinkAddress(**data)
    except (OSError, ValueError, TypeError):
        return None


def _record_address(db_path: str) -> None:
    address = SinkAddress(
        gcs_address=ray.get_runtime_context().gcs_address,
        namespace=NAMESPACE,
        actor=sink_name(db_path),
        pid=os.getpid(),
    )
    target = address_file(db_path)
    partial = target.with_name(target.name + ".tmp")
    partial.write_text(json.dumps(asdict(address)))
    partial.replace(target)  # readers never see half a file


class TraceSink:
    """Holds the only read-write connection to one trace database."""

    def __init__(self, db_path: str) -> None:
        self._store = DuckDBTraceStore(db_path)
        self.db_path = db_path
        if db_path != ":memory:":
            _record_address(db_path)

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows idempotently."""
        return self._store.write_spans(rows)

    def write_rows(self, table: str, rows: Sequence[Mapping[str, Any] | BaseModel]) -> int:
        """Upsert pipeline rows."""
        return self._store.write_rows(table, rows)

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL on the writable connection (trusted callers only)."""
        return self._store.query(sql, params)

    def read_only_query(
        self, sql: str, params: list[Any] | None = None, max_rows: int | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Vet `sql` as read-only, then run it in a transaction that is rolled back."""
        statements = read_statements(sql)
        try:
            return self._store.read_only_query(statements, params, max_rows)
        except duckdb.Error as exc:
            raise query_error(self.db_path, exc) from None

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record an LLM call."""
        self._store.put_llm_record(request_hash, record)

    def put_llm_records(self, records: Mapping[str, dict[str, Any]]) -> None:
        """Record several LLM calls."""
        self._store.put_llm_records(records)

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """A recorded LLM call, or None."""
        return self._store.get_llm_record(request_hash)

    def close(self) -> None:
        """Close the database (the actor can then be killed without a recovery on reopen) and
        remove its recorded address."""
        try:
            self._store.close()
        finally:
            if self.db_path != ":memory:":
                address_file(self.db_path).unlink(missing_ok=True)


_RemoteSink: Any = ray.remote(num_cpus=0)(TraceSink)


def get_or_create_sink(db_path: str | Path) -> ActorHandle[Any]:
    """The live sink for `db_path`, started on this node (where the file is) if there is none.

    Its lifetime is tied to the driver that creates it.
    """
    handle: ActorHandle[Any] = _RemoteSink.options(
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


def _get(ref: Any) -> Any:
    """`ray.get`, with the sink's storage errors raised as themselves (not wrapped by Ray) and
    a dead sink as a storage error."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BranchpointError):
            raise type(cause)(str(cause)) from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise TraceStorageError(
            f"the trace sink stopped ({first_line(exc)}); run again with --resume"
        ) from None


class SinkClient:
    """A `TraceStore` that forwards every call to a `TraceSink` actor: given its handle, or its
    actor name, looked up at the first call (an agent host restarted after the sink stopped then
    reports the stopped sink, not a host that cannot start)."""

    def __init__(self, sink: ActorHandle[Any] | str) -> None:
        self._name = sink if isinstance(sink, str) else ""
        self._handle: Any = None if isinstance(sink, str) else sink

    @property
    def handle(self) -> Any:
        """The sink actor's handle."""
        if self._handle is None:
            try:
                self._handle = ray.get_actor(self._name, namespace=NAMESPACE)
            except ValueError:
                raise TraceStorageError(
                    "the trace sink stopped (no live sink for this database); "
                    "run again with --resume"
                ) from None
        return self._handle

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        """Store span rows idempotently in the sink (an Arrow table travels without pickling
        each row)."""
        return int(_get(self.handle.write_spans.remote(rows)))

    def write_rows(self, table: str, rows: Sequence[Mapping[str, Any] | BaseModel]) -> int:
        """Upsert pipeline rows in the sink."""
        return int(_get(self.handle.write_rows.remote(table, rows)))

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL in the sink."""
        result: list[dict[str, Any]] = ray.get(self.handle.query.remote(sql, params))
        return result

    def put_llm_record(self, request_hash: str, record: dict[str, Any]) -> None:
        """Record an LLM call in the sink."""
        _get(self.handle.put_llm_record.remote(request_hash, record))

    def put_llm_records(self, records: Mapping[str, dict[str, Any]]) -> None:
        """Record several LLM calls in the sink: one round trip."""
        _get(self.handle.put_llm_records.remote(dict(records)))

    def get_llm_record(self, request_hash: str) -> dict[str, Any] | None:
        """A recorded LLM call from the sink, or None."""
        result: dict[str, Any] | None = ray.get(self.handle.get_llm_record.remote(request_hash))
        return result

    def close(self) -> None:
        """Nothing to release: the sink outlives its clients (see `close_sink`)."""
