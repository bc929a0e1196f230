"""Where a branchpoint step's time goes beside the parts floor, with tracing on and off.

`peers.py` says how far a step is from the floors; this script says which part of the step the
distance is in, measured inside one run. Every agent turn of a sim run of the math team is timed
at three seams, from outside the code they time (wrappers installed here, nothing changed in
branchpoint):

- the graph's node (`graph.take_turn`): from the node's start to its end; the time between one
  node's end and the next node's start is LangGraph's own step and the durable SQLite checkpoint;
- on Ray, the host call (`HostPool._run_on`): from the driver's call to the answer, of which the
  host's turn (`StepResult.seconds`, timed inside the host) is the agent's own work and the rest
  is the Ray round trip;
- what the node does besides the host call: build the request, store the step's message, set
  the step span's attributes, update the state.

Arms, alternated per round in one process: the parts floor (the same graph and checkpointer,
each node one call to a plain Ray actor), the agent floor (an async actor running one autogen
`AssistantAgent` turn on a replay client), and branchpoint on Ray and in-process with
`Settings(tracing=True)` and `tracing=False`. Figures are medians over the rounds of each run's
median step.

Usage: .venv/bin/python -m benchmarks.step_parts [--items 300] [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from benchmarks.common import Figure, chain_task, console, median, report_figures, start_local_ray
from benchmarks.peers import AgentTurn, Turn, floor_ms_per_step, ray_turn
from branchpoint.agents.teams import MATH
from branchpoint.orchestrator import graph
from branchpoint.orchestrator.hosts import HostPool
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings


@dataclass
class Seams:
    """Seconds at each seam of every turn since the last `clear`."""

    step: list[float] = field(default_factory=list)  # one node's end to the next node's end
    node: list[float] = field(default_factory=list)
    between: list[float] = field(default_factory=list)  # one node's end to the next one's start
    call: list[float] = field(default_factory=list)  # the driver's host call, answer included
    host: list[float] = field(default_factory=list)  # the host's turn, timed in the host
    last_end: float | None = None

    def clear(self) -> None:
        """Forget every sample (a new run starts)."""
        for name in ("step", "node", "between", "call", "host"):
            getattr(self, name).clear()
        self.last_end = None


@contextmanager
def timed_seams() -> Iterator[Seams]:
    """Wrap the graph's turn and the pool's host call with timers for as long as it is open."""
    seams = Seams()
    take_turn, run_on = graph.take_turn, HostPool._run_on

    def timed_turn(ctx: Any, state: Any, agent: str, checkpoint_id: str | None) -> Any:
        start = time.perf_counter()
        if seams.last_end is not None:
            seams.between.append(start - seams.last_end)
        update = take_turn(ctx, state, agent, checkpoint_id)
        end = time.perf_counter()
        seams.node.append(end - start)
        if seams.last_end is not None:
            seams.step.append(end - seams.last_end)
        seams.last_end = end
        return update

    def timed_call(pool: HostPool, index: int, request: Any) -> Any:
        start = time.perf_counter()
        result = run_on(pool, index, request)
        seams.call.append(time.perf_counter() - start)
        seams.host.append(result.seconds)
        return result

    graph.take_turn = timed_turn  # the node looks the function up in the module at each turn
    HostPool._run_on = timed_call  # type: ignore[method-assign,assignment]
    try:
        yield seams
    finally:
        graph.take_turn = take_turn
        HostPool._run_on = run_on  # type: ignore[method-assign]


def run_parts(session: Session, seams: Seams, items: int, on_ray: bool) -> dict[str, float]:
    """One sim run of `items` items: the median ms of each part of its steps."""
    seams.clear()
    run = run_task(session, MATH, chain_task(items), "sim")
    session.flush()  # the next arm starts with no export pending
    assert run.status == "succeeded", run
    ms = {name: median(getattr(seams, name)) * 1000 for name in ("step", "node", "between")}
    if on_ray:
        ms["call"] = median(seams.call) * 1000
        ms["host"] = median(seams.host) * 1000
        ms["round trip"] = (
            median([c - h for c, h in zip(seams.call, seams.host, strict=True)]) * 1000
        )
        ms["node besides the call"] = (
            median([n - c for n, c in zip(seams.node, seams.call, strict=True)]) * 1000
        )
    return ms


def main() -> None:
    """Run the arms in alternating order and print each part's median and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300, help="calculator items per run")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--turns", type=int, default=300, help="steps of the floors' runs")
    parser.add_argument("--quick", action="store_true", help="--rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2
    samples: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with (
        tempfile.TemporaryDirectory(prefix="bench-parts-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        start_local_ray()
        seams = stack.enter_context(timed_seams())
        sessions: dict[tuple[bool, bool], Session] = {}
        for on_ray, traced in itertools.product((True, False), (True, False)):
            settings = Settings(
                db_path=tmp / f"{on_ray}-{traced}.duckdb",
                tracing=traced,
                max_steps=args.items + 100,
            )
            session = stack.enter_context(Session(settings, ray=on_ray))
            for _ in range(settings.n_hosts if on_ray else 1):  # warm every host
                run_parts(session, seams, 30, on_ray)
            sessions[(on_ray, traced)] = session
        floor_actor, agent_actor = Turn.remote(), AgentTurn.remote()  # type: ignore[attr-defined]
        ray.get(floor_actor.run.remote("warm", 0))

        def floor(r: int) -> None:
            keep(
                "parts floor", floor_ms_per_step(ray_turn(floor_actor), args.turns, tmp, f"f{r}")[0]
            )

        def agent_floor(r: int) -> None:
            ray.get(agent_actor.reset.remote(args.turns))
            wall, _ = floor_ms_per_step(ray_turn(agent_actor), args.turns, tmp, f"a{r}")
            keep("agent floor", wall)

        def branchpoint(on_ray: bool, traced: bool) -> Callable[[int], None]:
            label = f"{'on Ray' if on_ray else 'in-process'}, {'traced' if traced else 'untraced'}"

            def arm(r: int) -> None:
                for part, value in run_parts(
                    sessions[(on_ray, traced)], seams, args.items, on_ray
                ).items():
                    keep(f"{label}: {part}", value)

            return arm

        arms: dict[str, Callable[[int], None]] = {"parts floor": floor, "agent floor": agent_floor}
        for on_ray, traced in sessions:
            arms[f"{on_ray}-{traced}"] = branchpoint(on_ray, traced)
        order = list(arms)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                console.print(f"round {r + 1}/{args.rounds}: {name} ...")
                arms[name](r)
    report(samples)


def report(samples: dict[str, list[float]]) -> None:
    """Print every part's median ms and the ratios, and hand the figures to run_all."""
    m = {name: median(values) for name, values in samples.items()}
    figures = [Figure(f"{name} (ms)", value) for name, value in m.items()]
    floor = m["parts floor"]
    traced, untraced = m["on Ray, traced: step"], m["on Ray, untraced: step"]
    local_traced, local_untraced = m["in-process, traced: step"], m["in-process, untraced: step"]
    figures += [
        Figure("on Ray, traced / parts floor", traced / floor, "≤ 1.5", traced / floor <= 1.5),
        Figure("on Ray, untraced / parts floor", untraced / floor),
        Figure("agent floor / parts floor", m["agent floor"] / floor),
        Figure("tracing share of a step on Ray (%)", (traced - untraced) / traced * 100),
        Figure(
            "tracing share of a step in-process (%)",
            (local_traced - local_untraced) / local_traced * 100,
            "≤ 5",
            (local_traced - local_untraced) / local_traced <= 0.05,
        ),
    ]
    for f in figures:
        console.print(f"{f.name:<58}{f.value:>10.3f}  {f.goal}")
    report_figures("step_parts", figures)


if __name__ == "__main__":
    main()
