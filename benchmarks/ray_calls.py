"""What one Ray actor call costs before any agent work: the floor's kind and an agent host's kind.

Arms, each timed as the median latency of many `ray.get(actor.method.remote(...))` calls in a
row (rounds alternate their order):

1. **sync, two scalars**: the parts floor's call to its actor (`peers.Turn`: a synchronous
   method, `(str, int)` in, a short string out).
2. **async, two scalars**: the same call to an async actor method (an `AgentHost` is async so
   that a sweep's turns interleave on it).
3. **async, a StepRequest**: a real `StepRequest` captured from a sim run on Ray (transcript by
   reference, as the pool ships it) in, its `StepResult` out; the method does nothing else.

The differences are what a branchpoint step pays on Ray whatever branchpoint does: the async
actor (2 − 1) and the request and result crossing processes (3 − 2).

Usage: .venv/bin/python -m benchmarks.ray_calls [--calls 2000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import ray

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
    arms: dict[str, Callable[[], Any]] = {
        "sync": lambda: ray.get(sync.run.remote("Solver", 7)),
        "async": lambda: ray.get(async_.run.remote("Solver", 7)),
        "step": lambda: ray.get(async_.step.remote(request)),
    }
    samples: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name in list(arms) if r % 2 == 0 else list(arms)[::-1]:
            samples[name].append(latency_ms(arms[name], args.calls))
            console.print(f"round {r + 1}/{args.rounds}: {name} {samples[name][-1]:.3f} ms")
    m = {name: median(values) for name, values in samples.items()}
    size = len(request.model_dump_json())
    figures = [
        Figure("actor call, sync, two scalars (ms)", m["sync"]),
        Figure("actor call, async, two scalars (ms)", m["async"]),
        Figure(f"actor call, async, a StepRequest of {size:,} JSON bytes (ms)", m["step"]),
        Figure("async actor's extra cost (ms)", m["async"] - m["sync"]),
        Figure("a StepRequest and StepResult crossing (ms)", m["step"] - m["async"]),
    ]
    for figure in figures:
        console.print(f"{figure.name}: {figure.value:.3f}")
    report_figures("ray_calls", figures)


if __name__ == "__main__":
    main()
