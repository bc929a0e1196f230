"""Per-step cost of a branchpoint step beside its peers, side by side in one process.

Arms, each run once per round (rounds alternate their order; medians over the rounds):

1. **autogen peer**: autogen-agentchat `RoundRobinGroupChat` of 3 `AssistantAgent`s, each on its
   own `ReplayChatCompletionClient` (in-process, no durability, no tracing): ms per turn.
2. **parts floor**: the sum of our parts without branchpoint: a LangGraph 3-node graph with
   `SqliteSaver` and `durability="sync"`, each node one call to a Ray actor: ms per step.
3. **branchpoint on Ray**: `run_task(MATH, chain_task(n), "sim")` (tracing and durable SQLite
   checkpoints on, as shipped). A step's time is the gap between consecutive message-store
   appends (`AppendClock`); "early" is the median of steps 5–24, "late" of the last 20.
4. **branchpoint in-process**: the same run in a `ray=False` session (turns in the driver, spans
   straight to the store), when this checkout has one.

Goals (issue 16): late ≤ 1.1× early (O(1) in run length); branchpoint early ≤ 1.5× the parts
floor; in-process early ≤ 2× the autogen peer.

Usage: .venv/bin/python -m benchmarks.peers [--steps 1000] [--rounds 3] [--turns 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import psutil
import ray
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from rich.table import Table

from benchmarks.common import AppendClock, Figure, chain_task, console, median, report_figures
from branchpoint.agents.teams import MATH
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

AGENTS = ("Planner", "Solver", "Verifier")
EARLY = slice(5, 25)


def autogen_ms_per_turn(turns: int) -> float:
    """ms per turn of a 3-agent RoundRobinGroupChat answering from replay clients."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.replay import ReplayChatCompletionClient

    per_agent = turns // len(AGENTS) + 1
    agents = [
        AssistantAgent(
            name,
            model_client=ReplayChatCompletionClient(
                [f"Item {i}: {i}+1 = {i + 1}" for i in range(per_agent)]
            ),
            system_message=f"You are the {name}.",
        )
        for name in AGENTS
    ]
    team = RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(turns + 1))

    async def go() -> int:
        result = await team.run(task="Count from 0, one step at a time.")
        return len(result.messages) - 1

    t0 = time.perf_counter()
    done = asyncio.run(go())
    return (time.perf_counter() - t0) * 1000 / done


@ray.remote(num_cpus=0)
class Turn:
    """The floor's agent: one Ray actor call per step that returns a short message."""

    def run(self, agent: str, step: int) -> str:
        """A step's message."""
        return f"{agent}: Item {step}: {step}+1 = {step + 1}"


class FloorState(TypedDict):
    """The floor graph's state: as small as branchpoint's."""

    step: int
    last: str


def floor_graph(actor: Any, saver: SqliteSaver, steps: int) -> Any:
    """Planner → Solver → Verifier → Planner … for `steps` steps, one actor call per node."""
    builder = StateGraph(FloorState)

    def node(name: str) -> Callable[[FloorState], dict[str, Any]]:
        def run(state: FloorState) -> dict[str, Any]:
            return {
                "step": state["step"] + 1,
                "last": ray.get(actor.run.remote(name, state["step"])),
            }

        return run

    def route(state: FloorState) -> str:
        return END if state["step"] >= steps else AGENTS[state["step"] % len(AGENTS)]

    for name in AGENTS:
        builder.add_node(name, node(name))
        builder.add_conditional_edges(name, route, [*AGENTS, END])
    builder.add_edge(START, AGENTS[0])
    return builder.compile(checkpointer=saver)


def floor_ms_per_step(actor: Any, steps: int, tmp: Path, tag: str) -> float:
    """ms per step of the parts floor (a fresh thread in a fresh SQLite file)."""
    conn = sqlite3.connect(str(tmp / f"floor-{tag}.sqlite"), check_same_thread=False)
    try:
        graph = floor_graph(actor, SqliteSaver(conn), steps)
        config = {"configurable": {"thread_id": tag}, "recursion_limit": steps + 10}
        t0 = time.perf_counter()
        graph.invoke({"step": 0, "last": ""}, config, durability="sync")
        return (time.perf_counter() - t0) * 1000 / steps
    finally:
        conn.close()


def step_times(session: Session, clock: AppendClock, n_items: int) -> list[float]:
    """Seconds of each step of one sim run of `n_items` items (step i ends at its append)."""
    t0 = time.perf_counter()
    run = run_task(session, MATH, chain_task(n_items), "sim")
    assert run.status == "succeeded", run
    stamps = [t for t, s in clock.stamps if s.run_id == run.run_id]
    return [b - a for a, b in zip([t0, *stamps], stamps, strict=False)]


def early_late_ms(times: list[float]) -> tuple[float, float]:
    """(median ms of steps 5–24, median ms of the last 20 steps)."""
    return median(times[EARLY]) * 1000, median(times[-20:]) * 1000


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the Ray workers it started (agent hosts, the
    sink, the floor's actor): what the steps cost, whatever else the machine runs. Ray's own
    daemons (raylet, GCS, dashboard) are left out: they tick the same for every arm."""
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            if proc.pid != me.pid and not " ".join(proc.cmdline()).startswith("ray::"):
                continue
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def in_process_supported() -> bool:
    """Whether this checkout's Session can run agent turns without Ray."""
    return "ray" in inspect.signature(Session).parameters


@contextmanager
def bench_session(tmp: Path, name: str, use_ray: bool, max_steps: int) -> Iterator[Session]:
    """A session on its own scratch trace database (Ray or in-process)."""
    settings = Settings(db_path=tmp / f"{name}.duckdb", max_steps=max_steps)
    session = Session(settings, ray=False) if not use_ray else Session(settings)  # type: ignore[call-arg]
    with session:
        yield session


def ratio(name: str, value: float, goal: float) -> Figure:
    """A ratio with an upper bound as its goal."""
    return Figure(name, value, goal=f"≤ {goal:g}", met=value <= goal)


def median_row(table: Table, name: str, values: list[float]) -> None:
    """One measure: its median and every round's value."""
    unit = "×" if "/" in name.split(" ")[-1] and "ms" not in name else ""
    table.add_row(name, f"{median(values):.2f}{unit}", " ".join(f"{v:.2f}" for v in values))


def main() -> None:
    """Run every arm `rounds` times and print the medians, ratios and goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="calculator items of the long run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every arm (medians)")
    parser.add_argument("--turns", type=int, default=60, help="turns of the autogen/floor arms")
    parser.add_argument("--quick", action="store_true", help="--steps 300 --rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 300, 2
    samples: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        ray_session = stack.enter_context(bench_session(tmp, "ray", True, args.steps + 100))
        ray_clock = AppendClock(ray_session)
        arms: dict[str, Callable[[int], int]] = {}  # each returns the steps it ran
        actor = Turn.remote()  # type: ignore[attr-defined]
        ray.get(actor.run.remote("warm", 0))
        step_times(ray_session, ray_clock, 5)  # warm the hosts: start-up is not a step's cost
        autogen_ms_per_turn(6)  # autogen's imports and runtime start-up are not a turn's cost

        def autogen(r: int) -> int:
            keep("autogen ms/turn", autogen_ms_per_turn(args.turns))
            return args.turns

        def floor(r: int) -> int:
            keep("floor ms/step", floor_ms_per_step(actor, args.turns, tmp, f"r{r}"))
            return args.turns

        def on_ray(r: int) -> int:
            times = step_times(ray_session, ray_clock, args.steps)
            early, late = early_late_ms(times)
            keep("ray early ms/step", early)
            keep("ray late ms/step", late)
            keep("ray late/early", late / early)
            return len(times)

        arms["autogen"], arms["floor"] = autogen, floor
        arms["ray"] = on_ray
        if in_process_supported():
            local = stack.enter_context(bench_session(tmp, "local", False, args.steps + 100))
            local_clock = AppendClock(local)
            step_times(local, local_clock, 5)

            def in_process(r: int) -> int:
                times = step_times(local, local_clock, args.steps)
                early, late = early_late_ms(times)
                keep("in-process early ms/step", early)
                keep("in-process late ms/step", late)
                keep("in-process late/early", late / early)
                return len(times)

            arms["in-process"] = in_process
        order = list(arms)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                console.print(f"round {r + 1}/{args.rounds}: {name} ...")
                cpu = cpu_seconds()
                steps = arms[name](r)
                keep(f"{name} CPU ms/step", (cpu_seconds() - cpu) * 1000 / steps)
    print_report(samples, args)


def print_report(samples: dict[str, list[float]], args: argparse.Namespace) -> None:
    """The table of medians and the goals, met or missed."""
    table = Table(
        title=f"per-step cost beside its peers (sim run of {args.steps} items; "
        f"median of {args.rounds} rounds)"
    )
    for col in ("measure", "median", "rounds"):
        table.add_column(col, justify="right")
    for name, values in samples.items():
        median_row(table, name, values)
    console.print(table)
    m = {name: median(values) for name, values in samples.items()}
    figures = [
        Figure("autogen peer (ms/turn)", m["autogen ms/turn"]),
        Figure("parts floor (ms/step)", m["floor ms/step"]),
        Figure("branchpoint on Ray, steps 5–24 (ms/step)", m["ray early ms/step"]),
        Figure("branchpoint on Ray, last 20 steps (ms/step)", m["ray late ms/step"]),
        ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, on Ray",
              m["ray late/early"], 1.1),
        ratio("per-step overhead: on Ray / parts floor (wall)",
              m["ray early ms/step"] / m["floor ms/step"], 1.5),
        ratio("per-step overhead: on Ray / parts floor (CPU of all processes)",
              m["ray CPU ms/step"] / m["floor CPU ms/step"], 1.5),
    ]  # fmt: skip
    if "in-process early ms/step" in m:
        figures += [
            Figure("branchpoint in-process, steps 5–24 (ms/step)", m["in-process early ms/step"]),
            ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, in-process",
                  m["in-process late/early"], 1.1),
            ratio("in-process / autogen peer (wall)",
                  m["in-process early ms/step"] / m["autogen ms/turn"], 2.0),
            ratio("in-process / autogen peer (CPU)",
                  m["in-process CPU ms/step"] / m["autogen CPU ms/step"], 2.0),
        ]  # fmt: skip
    else:
        figures.append(
            Figure("in-process / autogen peer", None, "≤ 2", note="no ray=False session here")
        )
    report_figures("peers", figures)


if __name__ == "__main__":
    main()
