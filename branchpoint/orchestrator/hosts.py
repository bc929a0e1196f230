"""The pool of AgentHost actors: each run keeps one live host (its home) for all its steps; a new
run goes to the host with the fewest turns in flight; a step whose host died runs again on
another one, which becomes the run's home.

A run on one host is sent each message once and finds its transcript's fold in that host's
cache; alternating hosts made a sequential sim run's step ~5% slower (benchmarks/RESULTS.md,
"Session 10").

Hosts keep no state between turns that a step depends on: the transcript travels by reference,
each host is sent the messages it has not had from this pool, and a host that lost them (Ray
restarted it) answers with a miss and is sent everything again. So a lost host costs only the
turn in flight. Ray restarts a dead host (`max_restarts`); meanwhile the pool
keeps it out of rotation for a cool-down, and the turn is re-run on the next live host. A step
fails only when its host dies `STEP_ATTEMPTS` times in a row; an error raised by the turn itself
(a model endpoint's answer, a bad request) is the step's own and is never retried here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import (
    GetTimeoutError,
    NodeDiedError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)

from branchpoint.agents.backends import reveal_model
from branchpoint.agents.transcripts import TranscriptMissError
from branchpoint.errors import HostLostError
from branchpoint.model import StepRequest, StepResult
from branchpoint.orchestrator.messages import HostMessages, MessageStore
from branchpoint.settings import Settings

HOST_MAX_RESTARTS = 5  # per host, over a session
STEP_ATTEMPTS = 3  # hosts a step may lose before it fails
COOLDOWN_S = 10.0  # a host that died is skipped this long (Ray restarts it meanwhile)
HOMES_KEPT = 4096  # runs whose host the pool remembers (the least recently stepped are forgotten)
FLUSH_TIMEOUT_S = 60.0
HOST_LOST = (RayActorError, WorkerCrashedError, NodeDiedError)


def start_hosts(
    settings: Settings,
    sink_actor: str,
    placements: Sequence[Any],
    messages: MessageStore | None = None,
) -> HostPool:
    """One restartable AgentHost actor per placement, writing to the sink actor named
    `sink_actor` (sent transcripts by reference from `messages`, the driver's message store)."""
    from branchpoint.agents.host import AgentHost

    actors = [
        AgentHost.options(  # type: ignore[attr-defined]
            scheduling_strategy=placement, max_restarts=HOST_MAX_RESTARTS, max_task_retries=0
        ).remote(settings, sink_actor)
        for placement in placements
    ]
    return HostPool(actors, messages=messages)


class HostPool:
    """Live AgentHost actors, each run on its home host; `call` blocks on the answer."""

    def __init__(
        self,
        hosts: list[Any],
        attempts: int = STEP_ATTEMPTS,
        cooldown_s: float = COOLDOWN_S,
        messages: MessageStore | None = None,
    ) -> None:
        self.hosts = hosts
        # Without a message store, requests must carry their transcript (`messages` unset).
        self.shipped = HostMessages(messages) if messages is not None else None
        self.attempts = attempts
        self.cooldown_s = cooldown_s
        self.failovers = 0  # steps re-run on another host after theirs died
        self._next = 0
        self._down_until = [0.0] * len(hosts)
        self._in_flight = [0] * len(hosts)
        self._homes: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def pick(self, run_id: str, avoid: set[int]) -> int:
        """The host for the run's next turn, counted as in flight there until `done`: the run's
        home when it is live and not yet tried for this step; otherwise the live untried host
        with the fewest turns in flight (ties in rotation), the run's new home."""
        with self._lock:
            now = time.monotonic()
            choice = self._homes.get(run_id)
            if choice is None or choice in avoid or self._down_until[choice] > now:
                order = [(self._next + i) % len(self.hosts) for i in range(len(self.hosts))]
                untried = [i for i in order if i not in avoid] or order
                live = [i for i in untried if self._down_until[i] <= now] or untried
                choice = min(live, key=lambda i: self._in_flight[i])
                self._next = (choice + 1) % len(self.hosts)
                self._homes[run_id] = choice
                if len(self._homes) > HOMES_KEPT:
                    self._homes.popitem(last=False)
            self._homes.move_to_end(run_id)
            self._in_flight[choice] += 1
            return choice

    def done(self, index: int) -> None:
        """A turn picked for host `index` finished (answered, failed or lost its host)."""
        with self._lock:
            self._in_flight[index] -= 1

    def mark_down(self, index: int) -> None:
        """Take a host out of rotation for the cool-down."""
        with self._lock:
            self._down_until[index] = time.monotonic() + self.cooldown_s
            self.failovers += 1
        if self.shipped is not None:  # restarted, it has no messages
            self.shipped.forget(index)

    def live_count(self) -> int:
        """Hosts in rotation now."""
        now = time.monotonic()
        with self._lock:
            return sum(until <= now for until in self._down_until)

    def call(self, request: StepRequest) -> StepResult:
        """Run one turn; re-run it on another host when its host dies."""
        full_model = reveal_model(request.model)
        if full_model != request.model:  # credentials stay out of what is stored
            request = request.model_copy(update={"model": full_model})
        tried: set[int] = set()
        lost: Exception | None = None
        for _ in range(self.attempts):
            index = self.pick(request.run_id, tried)
            try:
                return self._run_on(index, request)
            except HOST_LOST as exc:
                self.mark_down(index)
                tried.add(index)
                lost = exc
            finally:
                self.done(index)
        reason = str(lost).strip().splitlines()[0][:200] if lost else "unknown"
        raise HostLostError(
            f"step {request.step} of {request.run_id} lost its agent host {self.attempts} times "
            f"({type(lost).__name__}: {reason}); check the Ray workers' logs, then "
            "`run --resume` continues"
        )

    def _run_on(self, index: int, request: StepRequest) -> StepResult:
        """One turn on one host, with the messages that host lacks (all of them after a miss)."""
        if request.messages is None or self.shipped is None:
            result: StepResult = ray.get(self.hosts[index].run_step.remote(request))
            return result
        for attempt in range(2):
            ref = self.shipped.ref(index, request.messages.head, request.messages.plan_id)
            sent = request.model_copy(update={"messages": ref})
            try:
                result = ray.get(self.hosts[index].run_step.remote(sent))
            except RayTaskError as exc:
                if attempt or not isinstance(exc.cause, TranscriptMissError):
                    raise
                self.shipped.forget(index)
                continue
            self.shipped.sent(index, ref)
            return result
        raise AssertionError("unreachable: the second attempt returns or raises")

    def flush(self) -> None:
        """Export every live host's pending spans and records; what a dead host had not sent is
        lost (its spans, and records a replay then reports as missing)."""
        pending = [h.flush.remote() for h in self.hosts]
        for ref in pending:
            with contextlib.suppress(*HOST_LOST, GetTimeoutError):
                ray.get(ref, timeout=FLUSH_TIMEOUT_S)

    def kill(self) -> None:
        """Stop every host for good (no restart)."""
        for host in self.hosts:
            with contextlib.suppress(Exception):
                ray.kill(host, no_restart=True)
