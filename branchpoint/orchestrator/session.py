"""A Session starts the real parts once: Ray, the trace sink actor, agent hosts, checkpointer."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Self

import ray
from opentelemetry import trace
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from branchpoint.agents.host import AgentHost, sim_spec
from branchpoint.agents.teams import TeamSpec
from branchpoint.errors import BranchpointError
from branchpoint.orchestrator.checkpoints import open_checkpointer
from branchpoint.orchestrator.graph import HostPool, build_graph
from branchpoint.orchestrator.messages import SqliteMessageStore
from branchpoint.settings import Settings
from branchpoint.telemetry.sink import SinkClient, close_sink, get_or_create_sink
from branchpoint.telemetry.tracing import setup_tracing

os.environ.setdefault("AUTOGEN_DISABLE_RUNTIME_TRACING", "true")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def start_ray(address: str | None) -> None:
    """Connect to a cluster (`auto`, `ray://…`) or start a local Ray; no-op when connected."""
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            namespace="branchpoint",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
            ignore_reinit_error=True,
        )
    except ConnectionError as exc:
        raise BranchpointError(
            f"cannot reach the Ray cluster at {address!r}: {exc}; "
            "start it with `ray start --head` or drop --address"
        ) from None


def host_placements(n_hosts: int) -> list[NodeAffinitySchedulingStrategy]:
    """One placement per AgentHost, round-robin over the cluster's alive nodes.

    SPREAD is only best effort, and so is a soft affinity (under load both put every host on
    the driver's node), so each host is pinned to a node that is alive now: at least one host
    per node, so every node does agent work. Hosts need no CPU, so a pinned host always fits.
    """
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    count = max(1, n_hosts, len(nodes))
    return [
        NodeAffinitySchedulingStrategy(node_id=nodes[i % len(nodes)], soft=False)
        for i in range(count)
    ]


class Session:
    """Owns the long-lived services of a driver process; use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = contextlib.ExitStack()
        start_ray(settings.ray_address)
        self.sink = get_or_create_sink(str(Path(settings.db_path).resolve()))
        self.store = SinkClient(self.sink)
        self.provider = setup_tracing(self.store, "branchpoint-driver")
        self.tracer: trace.Tracer = (
            self.provider.get_tracer("branchpoint.orchestrator")
            if settings.tracing
            else trace.NoOpTracer()
        )
        checkpoint_spec = settings.checkpointer
        self.checkpointer = self._stack.enter_context(
            open_checkpointer(checkpoint_spec, settings.checkpoint_path)
        )
        self.messages = SqliteMessageStore(Path(settings.db_path).with_suffix(".messages.sqlite"))
        self._host_actors = [
            AgentHost.options(scheduling_strategy=placement).remote(settings, self.sink)  # type: ignore[attr-defined]
            for placement in host_placements(settings.n_hosts)
        ]
        self.hosts = HostPool(self._host_actors)
        self._graphs: dict[str, Any] = {}

    def graph(self, team: TeamSpec) -> Any:
        """The compiled graph of a team (compiled once per session)."""
        if team.name not in self._graphs:
            self._graphs[team.name] = build_graph(team, self.checkpointer)
        return self._graphs[team.name]

    def flush(self) -> None:
        """Push every pending span (driver and hosts) into the trace database."""
        ray.get([h.flush.remote() for h in self._host_actors])
        self.provider.force_flush()

    def close(self) -> None:
        """Flush telemetry, stop the hosts and the sink (releasing the DuckDB file), close stores."""
        with contextlib.suppress(Exception):
            self.flush()
        self.provider.shutdown()
        for host in self._host_actors:
            ray.kill(host)
        with contextlib.suppress(Exception):
            close_sink(self.sink)
        self.messages.close()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_sim(model: str) -> bool:
    """Whether a model string names the sim backend."""
    return sim_spec(model) is not None
