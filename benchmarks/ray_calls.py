"""What one Ray actor call costs before any agent work: the floor's kind and an agent host's kind.

Arms, each timed as the median latency of many `ray.get(actor.method.remote(...))` calls in a
row (rounds alternate their order):

1. **sync, two scalars**: the parts floor's call to its actor (`peers.Turn`: a synchronous
   method, `(str, int)` in, a short string out).
2. **async, two scalars**: the same call to an async actor method (an `AgentHost` is async so
   that a sweep's turns interleave on it).
3. **async, a StepRequest**: a real `StepRequest` captured from a sim run on Ray (transcript by
   reference, as the pool ships it) in, its `StepResult` out; the method does nothing else.
4. **threaded, a StepRequest**: the same request to a threaded actor (synchronous methods,
   `max_concurrency` threads: the other way to serve a sweep's turns at once) whose method hands
   the step to an event loop of its own and waits for it.
5. **compiled, a StepRequest**: the same request through a Ray Compiled Graph (`ray.dag`,
   shared-memory channels instead of an RPC per call) to a synchronous method of the same async
   actor that hands the request to the actor's event loop (a compiled graph cannot call an
   async method). Also measured: the CPU the driver and the actor burn while the compiled graph
   waits for its next call, against the same two processes with no compiled graph.

The differences are what a branchpoint step pays on Ray whatever branchpoint does: the async
actor (2 − 1) and the request and result crossing processes (3 − 2). Arm 4 is what an agent
host that is not async would pay instead. Arm 5 is the transport that would remove most of it,
and the idle CPU is why branchpoint does not use it: each compiled graph's readers spin (a core
each on this machine), which an embedded model's turn, running on the same cores for seconds,
cannot afford.

Usage: .venv/bin/python -m benchmarks.ray_calls [--calls 2000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import ray
from ray.dag import InputNode

from benchmarks.common import Figure, chain_task, console, median, report_figures, scratch_session
from benchmarks.peers import Turn
from branchpoint.agents.teams import MATH
from branchpoint.model import StepRequest, StepResult
from branchpoint.orchestrator import hosts
from branchpoint.orchestrator.runner import run_task


def captured_step(items: int = 40) -> tuple[StepRequest, StepResult]:
    """A step request as the pool sent it to a host, and the host's result: the middle step of
    a sim run of `items` items."""
    seen: list[tuple[StepRequest, StepResult]] = []
    original = hosts.HostPool._run_on

    def run_on(pool: hosts.HostPool, index: int, request: StepRequest) -> StepResult:
        assert request.messages is not None and pool.shipped is not None
        sent = pool.shipped.ref(index, request.messages.head, request.messages.plan_id)
        result = original(pool, index, request)  # sends the same messages, then marks them sent
        seen.append((request.model_copy(update={"messages": sent}), result))
        return result

    hosts.HostPool._run_on = run_on  # type: ignore[method-assign,assignment]
    try:
        with scratch_session(max_steps=items + 10) as session:
            run_task(session, MATH, chain_task(items), "sim")
    finally:
        hosts.HostPool._run_on = original  # type: ignore[method-assign]
    return seen[len(seen) // 2]


@ray.remote(num_cpus=0)
class AsyncActor:
    """An agent host's kind of actor, doing nothing."""

    def __init__(self, result: StepResult) -> None:
        self.result = result

    async def run(self, agent: str, step: int) -> str:
        """A short message."""
        return f"{agent}: {step}"

    async def step(self, request: StepRequest) -> StepResult:
        """The captured result, whatever the request."""
        return self.result

    async def pid(self) -> int:
        """This actor's process, after noting its event loop for `lane`."""
        self.loop = asyncio.get_running_loop()
        return os.getpid()

    def lane(self, request: StepRequest) -> StepResult:
        """`step` called from a compiled graph's thread, run on the actor's event loop."""
        return asyncio.run_coroutine_threadsafe(self.step(request), self.loop).result()


@ray.remote(num_cpus=0, max_concurrency=64)  # type: ignore[call-overload]
class ThreadedActor:
    """The other way to serve many turns at once: a threaded actor (sync methods, many threads)
    whose method hands the step to an event loop of its own and waits for it."""

    def __init__(self, result: StepResult) -> None:
        self.result = result
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _step(self, request: StepRequest) -> StepResult:
        return self.result

    def step(self, request: StepRequest) -> StepResult:
        """The captured result, from the actor's loop."""
        return asyncio.run_coroutine_threadsafe(self._step(request), self.loop).result()


def idle_cpu(pids: list[int], seconds: float) -> float:
    """CPU seconds per second the processes burn over `seconds` of doing nothing."""

    def used() -> float:
        return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)  # user + system

    before = used()
    time.sleep(seconds)
    return (used() - before) / seconds


def latency_ms(call: Callable[[], Any], calls: int) -> float:
    """Median ms of `calls` calls in a row, after a warm-up."""
    for _ in range(min(100, calls)):
        call()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return median(times) * 1000


def main() -> None:
    """Time the three arms and report their differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per arm and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--quick", action="store_true", help="--calls 500 --rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 500, 2
    request, result = captured_step()
    sync, async_ = Turn.remote(), AsyncActor.remote(result)  # type: ignore[attr-defined]
    threaded = ThreadedActor.remote(result)  # type: ignore[attr-defined]
    pids = [os.getpid(), ray.get(async_.pid.remote())]
    idle_plain = idle_cpu(pids, 3.0)
    with InputNode() as given:
        compiled = async_.lane.bind(given).experimental_compile()
    arms: dict[str, Callable[[], Any]] = {
        "sync": lambda: ray.get(sync.run.remote("Solver", 7)),
        "async": lambda: ray.get(async_.run.remote("Solver", 7)),
        "step": lambda: ray.get(async_.step.remote(request)),
        "threaded": lambda: ray.get(threaded.step.remote(request)),
        "compiled": lambda: compiled.execute(request).get(timeout=-1),
    }
    samples: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name in list(arms) if r % 2 == 0 else list(arms)[::-1]:
            samples[name].append(latency_ms(arms[name], args.calls))
            console.print(f"round {r + 1}/{args.rounds}: {name} {samples[name][-1]:.3f} ms")
    idle_compiled = idle_cpu(pids, 3.0)
    compiled.teardown()
    m = {name: median(values) for name, values in samples.items()}
    size = len(request.model_dump_json())
    figures = [
        Figure("actor call, sync, two scalars (ms)", m["sync"]),
        Figure("actor call, async, two scalars (ms)", m["async"]),
        Figure(f"actor call, async, a StepRequest of {size:,} JSON bytes (ms)", m["step"]),
        Figure("async actor's extra cost (ms)", m["async"] - m["sync"]),
        Figure("a StepRequest and StepResult crossing (ms)", m["step"] - m["async"]),
        Figure(
            "the StepRequest to a threaded actor that runs it on its own loop (ms)", m["threaded"]
        ),
        Figure("the StepRequest through a compiled graph (ms)", m["compiled"]),
        Figure("idle CPU of driver and actor, plain actor (cores)", idle_plain),
        Figure("idle CPU of driver and actor, compiled graph waiting (cores)", idle_compiled),
    ]
    for figure in figures:
        console.print(f"{figure.name}: {figure.value:.3f}")
    report_figures("ray_calls", figures)


if __name__ == "__main__":
    main()
