"""A Session starts the services of a driver once: the trace store, tracing, the checkpointer, the
message store, and the executor that runs agent turns, on Ray or in this process.

- `ray=True` (the CLI's default): agent turns run in `AgentHost` Ray actors pinned over the
  cluster's nodes, and a `TraceSink` actor owns the DuckDB file.
- `ray=False`: agent turns run in this process through the same `AgentRuntime` (on one event
  loop thread, as in an async actor), and spans go straight to a `DuckDBTraceStore` this
  process owns. Ray is never started. `db_path=":memory:"` keeps everything in memory.

Everything above the session (graph, runs, forks, replays, the pipeline) is the same code in
both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from branchpoint.agents.teams import TeamSpec
from branchpoint.errors import AgentTurnError, BranchpointError
from branchpoint.ids import Clock, IdSource, OtelIds, RandomIds, SystemClock
from branchpoint.model import StepRequest, StepResult
from branchpoint.orchestrator.checkpoints import open_checkpointer
from branchpoint.orchestrator.graph import build_graph
from branchpoint.orchestrator.messages import (
    InMemoryMessageStore,
    MessageStore,
    SqliteMessageStore,
)
from branchpoint.settings import Settings
from branchpoint.telemetry.readonly import InvalidQueryError, read_statements
from branchpoint.telemetry.store import DuckDBTraceStore, TraceStore, check_trace_db
from branchpoint.telemetry.tracing import flush, setup_tracing, share_tracing

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

os.environ.setdefault("AUTOGEN_DISABLE_RUNTIME_TRACING", "true")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

MEMORY = ":memory:"


class Executor(Protocol):
    """Where agent turns run: Ray actors or this process."""

    def call(self, request: StepRequest) -> StepResult:
        """Run one agent turn and wait for its result."""
        ...

    def flush(self) -> None:
        """Export every span the executor's agents have finished."""
        ...

    def close(self) -> None:
        """Stop the executor's agents."""
        ...


def start_ray(address: str | None) -> None:
    """Connect to a cluster (`auto`, `ray://…`) or start a local Ray; no-op when connected."""
    import ray

    if ray.is_initialized():
        return
    starts_local = address is None and not os.environ.get("RAY_ADDRESS")
    # A local Ray serves no Prometheus metrics: that endpoint listens on every interface
    # without authentication (GCS, raylet and workers require Ray's token).
    local = {"_system_config": {"enable_metrics_collection": False}} if starts_local else {}
    try:
        with _no_dashboard_metrics() if starts_local else contextlib.nullcontext():
            _init_ray(address, local)
    except ConnectionError as exc:
        raise BranchpointError(
            f"cannot reach the Ray cluster at {address!r}: {exc}; "
            "start it with `ray start --head` or drop --address"
        ) from None
    except Exception as exc:
        if "timed out during startup" not in str(exc):
            raise
        raise BranchpointError(
            "the local Ray did not start in time (the machine is busy); try again, or join a "
            "running cluster with --address"
        ) from None


def _init_ray(address: str | None, local: dict[str, Any]) -> None:
    import ray

    ray.init(
        address=address,
        namespace="branchpoint",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
        ignore_reinit_error=True,
        **local,
    )


# A port no server can bind (see `_no_dashboard_metrics`).
_UNBINDABLE_PORT = "65536"


@contextlib.contextmanager
def _no_dashboard_metrics() -> Iterator[None]:
    """While a local Ray starts: its dashboard process (started even without a dashboard, for
    usage stats) serves Prometheus metrics on every interface, unauthenticated, at the port in
    `DASHBOARD_METRIC_PORT` (Ray 2.60; `enable_metrics_collection` does not cover it). Given a
    port no socket can bind, Ray logs the failure and serves nothing; the variable is set only
    for the processes `ray.init` starts, and only when the user has not set it."""
    if "DASHBOARD_METRIC_PORT" in os.environ:
        yield
        return
    os.environ["DASHBOARD_METRIC_PORT"] = _UNBINDABLE_PORT
    try:
        yield
    finally:
        os.environ.pop("DASHBOARD_METRIC_PORT", None)


def host_placements(n_hosts: int) -> list[NodeAffinitySchedulingStrategy]:
    """One placement per AgentHost, round-robin over the cluster's alive nodes.

    SPREAD is only best effort, and so is a soft affinity (under load both put every host on
    the driver's node), so each host is pinned to a node that is alive now: at least one host
    per node, so every node does agent work. Hosts need no CPU, so a pinned host always fits.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))  # type: ignore[no-untyped-call]
    count = max(1, n_hosts, len(nodes))
    return [
        NodeAffinitySchedulingStrategy(node_id=nodes[i % len(nodes)], soft=False)
        for i in range(count)
    ]


class RayExecutor:
    """Agent turns in restartable `AgentHost` actors (orchestrator/hosts.py); their spans go to
    the sink actor."""

    def __init__(self, settings: Settings, sink_actor: str, messages: MessageStore) -> None:
        from branchpoint.orchestrator.hosts import start_hosts

        self._pool = start_hosts(settings, sink_actor, host_placements(settings.n_hosts), messages)

    def call(self, request: StepRequest) -> StepResult:
        """Run one turn on the next live host."""
        return self._pool.call(request)

    def flush(self) -> None:
        """Flush every live host's spans into the sink."""
        self._pool.flush()

    def close(self) -> None:
        """Kill the host actors."""
        self._pool.kill()


class InProcessExecutor:
    """Agent turns in this process: one `AgentRuntime` on one event loop thread.

    The loop plays the part of an async `AgentHost` actor: turns from many driver threads
    interleave on it (a sim's latency is an `asyncio.sleep`), and the runtime's per-model lock
    works because every turn runs on the same loop.
    """

    def __init__(
        self,
        settings: Settings,
        store: TraceStore,
        messages: MessageStore,
        driver: TracerProvider,
        ids: IdSource | None = None,
    ) -> None:
        from branchpoint.agents.host import AgentRuntime

        # The agents' spans share the driver's batches: one store write per flush, not two.
        self.provider = (
            share_tracing(driver, "branchpoint-agent-host", OtelIds(ids) if ids else None)
            if settings.tracing
            else None
        )
        # Transcripts by reference resolve straight from the driver's message store. One host:
        # its one copy of each embedded model gets every core (generations are serialised in a
        # process, `local_model._GENERATION_LOCK`), not a Ray host's share.
        # A turn does not wait for its LLM record to be stored (as on a Ray host); `flush` waits
        # for them all. Waiting cost a 1,000-item sim run ~8% of its time (RESULTS.md, session 15).
        self.runtime = AgentRuntime(
            dataclasses.replace(settings, n_hosts=1),
            store,
            self.provider,
            fetch=messages.link,
            write_behind=True,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="branchpoint-agents", daemon=True
        )
        self._thread.start()

    def call(self, request: StepRequest) -> StepResult:
        """Run one turn on the agents' loop and wait for it; what the turn raises (other than our
        own errors) ends the run as errored, as on a Ray host, not the whole command."""
        turn = asyncio.run_coroutine_threadsafe(self.runtime.run_step(request), self._loop)
        try:
            return turn.result()
        except BranchpointError:
            raise
        except Exception as exc:
            raise AgentTurnError(exc) from exc

    def flush(self) -> None:
        """Store every LLM record still being written (raising a failed write) and export the
        agents' finished spans."""
        asyncio.run_coroutine_threadsafe(self.runtime.drain(), self._loop).result()
        if self.provider is not None:
            flush(self.provider)

    def close(self) -> None:
        """Stop the agents' loop and their tracing."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        if self.provider is not None:
            self.provider.shutdown()


class Session:
    """Owns the long-lived services of a driver process; use as a context manager.

    `ray` chooses the executor (see the module's docstring); `ids` and `clock` are where new
    run, fork, sweep and span ids and recorded durations come from (inject seeded ones in tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ray: bool = True,
        ids: IdSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.ray = ray
        self.ids: IdSource = ids or RandomIds()
        self.clock: Clock = clock or SystemClock()
        self._stack = contextlib.ExitStack()
        in_memory = str(settings.db_path) == MEMORY
        if in_memory and ray:
            raise BranchpointError(
                "an in-memory trace database needs the in-process mode (ray=False); "
                "give a file path to run on Ray"
            )
        self._sink: Any = None
        self._duck: DuckDBTraceStore | None = None
        self.store: TraceStore
        check_trace_db(settings.db_path)  # a --db that cannot be a trace database: before anything
        if ray:
            from branchpoint.telemetry.sink import SinkClient, get_or_create_sink, sink_name

            start_ray(settings.ray_address)
            resolved = str(Path(settings.db_path).resolve())
            self._sink = get_or_create_sink(resolved)
            sink_actor = sink_name(resolved)
            self.store = SinkClient(self._sink)
        else:
            self._duck = DuckDBTraceStore(MEMORY if in_memory else settings.db_path)
            self.store = self._duck
        otel_ids = OtelIds(ids) if ids else None
        self.provider: TracerProvider = setup_tracing(self.store, "branchpoint-driver", otel_ids)
        self.tracer: trace.Tracer = (
            self.provider.get_tracer("branchpoint.orchestrator")
            if settings.tracing
            else trace.NoOpTracer()
        )
        self.checkpointer = self._stack.enter_context(
            open_checkpointer("memory", Path(MEMORY))
            if in_memory
            else open_checkpointer(settings.checkpointer, settings.checkpoint_path)
        )
        self.messages: MessageStore = (
            InMemoryMessageStore()
            if in_memory
            else SqliteMessageStore(Path(settings.db_path).with_suffix(".messages.sqlite"))
        )
        self.hosts: Executor = (
            RayExecutor(settings, sink_actor, self.messages)
            if ray
            else InProcessExecutor(settings, self.store, self.messages, self.provider, ids)
        )
        self._graphs: dict[str, CompiledStateGraph[Any, Any, Any, Any]] = {}

    @property
    def sink(self) -> Any:
        """The trace sink actor (Ray mode), or None in-process."""
        return self._sink

    def graph(self, team: TeamSpec) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The compiled graph of a team (compiled once per session)."""
        if team.name not in self._graphs:
            self._graphs[team.name] = build_graph(team, self.checkpointer)
        return self._graphs[team.name]

    def read_only_query(
        self, sql: str, params: list[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Vetted read-only SQL on the trace database, through whoever holds it open."""
        if self._duck is None:  # the sink actor holds the file: go through it
            from branchpoint.telemetry.query import readonly_query

            return readonly_query(self.settings.db_path, sql, params)
        import duckdb

        statements = read_statements(sql)
        try:
            return self._duck.read_only_query(statements, params)
        except duckdb.Error as exc:
            raise InvalidQueryError(f"{exc}; fix the query (see SHOW TABLES)") from None

    def new_run_id(self) -> str:
        """A fresh run id."""
        return self.ids.new_id("run")

    def flush(self) -> None:
        """Push every pending span (driver and agents) into the trace database."""
        self.hosts.flush()
        flush(self.provider)  # raises the storage error if spans could not be stored

    def close(self) -> None:
        """Flush telemetry, stop the agents and the store (releasing the DuckDB file)."""
        with contextlib.suppress(Exception):
            self.flush()
        self.hosts.close()  # first: in-process, the agents' spans go through the driver's batches
        self.provider.shutdown()
        if self._sink is not None:
            from branchpoint.telemetry.sink import close_sink

            with contextlib.suppress(Exception):
                close_sink(self._sink)
        else:
            self.store.close()
        self.messages.close()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_sim(model: str) -> bool:
    """Whether a model string names the sim backend."""
    from branchpoint.agents.host import sim_spec

    return sim_spec(model) is not None
