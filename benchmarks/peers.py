"""Per-step cost of a branchpoint step beside its peers, side by side in one process.

Arms, each run once per round (rounds alternate their order; medians over the rounds):

1. **autogen peer**: autogen-agentchat `RoundRobinGroupChat` of 3 `AssistantAgent`s, each on its
   own `ReplayChatCompletionClient` (in-process, no durability, no tracing): ms per turn.
2. **parts floor**: the sum of our parts without branchpoint: a LangGraph 3-node graph with
   `SqliteSaver` and `durability="sync"`, each node one call to a Ray actor: ms per step.
   **In-process parts floor**: the same graph whose nodes each run one turn of an autogen
   `AssistantAgent` on a replay client, on an event loop thread (as `Session(ray=False)` runs
   its agents), no Ray: what the parts the issue asks for cost before branchpoint adds
   anything, beside the autogen peer.
   **Agent floor on Ray**: the parts floor whose actor is async (as an `AgentHost` must be, so
   that a sweep's turns interleave on it) and runs that autogen turn: the parts on Ray with the
   agent's own work, before branchpoint adds anything.
3. **branchpoint on Ray**: `run_task(MATH, chain_task(n), "sim")` (tracing and durable SQLite
   checkpoints on, as shipped). A step's time is the gap between consecutive message-store
   appends (`AppendClock`); "early" is the median of steps 5–24, "late" of the last 20. CPU
   (of the driver and every Ray worker it started) is read at every 20th step: early and late
   CPU are the medians of the first and last five 20-step windows. "Run" is the whole run's
   wall time over its steps, as the floors are measured (twenty steps' median moves with the
   machine's load: 2.8 to 6.2 ms in consecutive runs of one session).
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
import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import psutil
import ray
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from rich.table import Table

from benchmarks.common import (
    AppendClock,
    Figure,
    chain_task,
    console,
    median,
    report_figures,
    start_local_ray,
)
from branchpoint.agents.teams import MATH
from branchpoint.model import Step
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

AGENTS = ("Planner", "Solver", "Verifier")
EARLY = slice(5, 25)
CPU_WINDOWS = 5  # CPU is read over this many windows of 20 steps at each end (their median)


def replay_agents(turns: int) -> dict[str, Any]:
    """The 3 `AssistantAgent`s of the autogen arms, by name, each answering from its own replay
    client with enough scripted replies for `turns` turns in all."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.replay import ReplayChatCompletionClient

    per_agent = turns // len(AGENTS) + 1
    return {
        name: AssistantAgent(
            name,
            model_client=ReplayChatCompletionClient(
                [f"Item {i}: {i}+1 = {i + 1}" for i in range(per_agent)]
            ),
            system_message=f"You are the {name}.",
        )
        for name in AGENTS
    }


def autogen_ms_per_turn(turns: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per turn of a 3-agent RoundRobinGroupChat answering from replay clients
    (the team is built before the clock starts)."""
    from autogen_agentchat.conditions import MaxMessageTermination
    from autogen_agentchat.teams import RoundRobinGroupChat

    agents = list(replay_agents(turns).values())
    team = RoundRobinGroupChat(agents, termination_condition=MaxMessageTermination(turns + 1))

    async def go() -> int:
        result = await team.run(task="Count from 0, one step at a time.")
        return len(result.messages) - 1

    t0, cpu = time.perf_counter(), cpu_seconds()
    done = asyncio.run(go())
    return (time.perf_counter() - t0) * 1000 / done, (cpu_seconds() - cpu) * 1000 / done


@ray.remote(num_cpus=0)
class Turn:
    """The floor's agent: one Ray actor call per step that returns a short message."""

    def run(self, agent: str, step: int) -> str:
        """A step's message."""
        return f"{agent}: Item {step}: {step}+1 = {step + 1}"


@ray.remote(num_cpus=0)
class AgentTurn:
    """The agent floor's host: an async actor whose call runs one `AssistantAgent` turn on a
    replay client."""

    def __init__(self) -> None:
        self.agents: dict[str, Any] = {}

    def reset(self, turns: int) -> None:
        """Fresh agents with replies for `turns` turns (their contexts start empty)."""
        self.agents = replay_agents(turns)

    async def run(self, agent: str, step: int) -> str:
        """One turn of `agent`."""
        from autogen_agentchat.messages import TextMessage
        from autogen_core import CancellationToken

        message = TextMessage(content=f"Item {step}", source="user")
        response = await self.agents[agent].on_messages([message], CancellationToken())
        return str(response.chat_message.to_text())


class FloorState(TypedDict):
    """The floor graph's state: as small as branchpoint's."""

    step: int
    last: str


def floor_graph(turn: Callable[[str, int], str], saver: SqliteSaver, steps: int) -> Any:
    """Planner → Solver → Verifier → Planner … for `steps` steps, one `turn` per node."""
    builder = StateGraph(FloorState)

    def node(name: str) -> Callable[..., dict[str, Any]]:
        def run(state: FloorState) -> dict[str, Any]:
            return {"step": state["step"] + 1, "last": turn(name, state["step"])}

        return run

    def route(state: FloorState) -> str:
        return END if state["step"] >= steps else AGENTS[state["step"] % len(AGENTS)]

    for name in AGENTS:
        builder.add_node(name, node(name))
        builder.add_conditional_edges(name, route, [*AGENTS, END])
    builder.add_edge(START, AGENTS[0])
    return builder.compile(checkpointer=saver)


def floor_ms_per_step(
    turn: Callable[[str, int], str], steps: int, tmp: Path, tag: str
) -> tuple[float, float]:
    """(wall ms, CPU ms) per step of a parts floor (a fresh thread in a fresh SQLite file;
    the graph is compiled before the clock starts)."""
    conn = sqlite3.connect(str(tmp / f"floor-{tag}.sqlite"), check_same_thread=False)
    try:
        graph = floor_graph(turn, SqliteSaver(conn), steps)
        config = {"configurable": {"thread_id": tag}, "recursion_limit": steps + 10}
        t0, cpu = time.perf_counter(), cpu_seconds()
        graph.invoke({"step": 0, "last": ""}, config, durability="sync")
        return (time.perf_counter() - t0) * 1000 / steps, (cpu_seconds() - cpu) * 1000 / steps
    finally:
        conn.close()


def ray_turn(actor: Any) -> Callable[[str, int], str]:
    """The parts floor's turn: one call to a Ray actor."""
    return lambda name, step: str(ray.get(actor.run.remote(name, step)))


@contextmanager
def autogen_turns(steps: int) -> Iterator[Callable[[str, int], str]]:
    """The in-process floor's turn: one `AssistantAgent.on_messages` on a replay client, run on
    an event loop thread as branchpoint's in-process executor runs its agents."""
    import threading

    from autogen_agentchat.messages import TextMessage
    from autogen_core import CancellationToken

    agents = replay_agents(steps)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def turn(name: str, step: int) -> str:
        message = TextMessage(content=f"Item {step}", source="user")
        ask = agents[name].on_messages([message], CancellationToken())
        response = asyncio.run_coroutine_threadsafe(ask, loop).result()
        return response.chat_message.to_text()

    try:
        yield turn
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class CpuMarks:
    """Wraps the session's message store to read the CPU clock when chosen steps are recorded:
    the CPU a window of steps cost, which the load of other processes barely changes."""

    def __init__(self, session: Session) -> None:
        self.at: set[int] = set()
        self.cpu: dict[tuple[str, int], float] = {}
        store = session.messages
        original = store.append

        def append(parent_id: str | None, step: Step) -> str:
            message_id = original(parent_id, step)
            if step.index in self.at:
                self.cpu[(step.run_id, step.index)] = cpu_seconds()
            return message_id

        store.append = append  # type: ignore[method-assign]


@dataclass(frozen=True)
class RunTimes:
    """One measured run: each step's seconds, CPU ms per step of the two windows and overall."""

    seconds: list[float]
    early_cpu_ms: float
    late_cpu_ms: float
    cpu_ms: float


def step_times(session: Session, clock: AppendClock, marks: CpuMarks, n_items: int) -> RunTimes:
    """One sim run of `n_items` items (n_items + 2 steps). Step i ends at its message's append.
    The overall CPU includes exporting the run's spans (flushed at the end, so that the next
    measurement starts on a quiet machine)."""
    n = n_items + 2
    early_marks = list(range(EARLY.start - 1, n, 20))[: CPU_WINDOWS + 1]
    late_marks = list(range(n - 1, EARLY.start - 2, -20))[: CPU_WINDOWS + 1][::-1]
    marks.at = {*early_marks, *late_marks}
    t0, cpu = time.perf_counter(), cpu_seconds()
    run = run_task(session, MATH, chain_task(n_items), "sim")
    session.flush()
    cpu_ms = (cpu_seconds() - cpu) * 1000 / run.n_steps
    assert run.status == "succeeded" and run.n_steps == n, run
    stamps = [t for t, s in clock.stamps if s.run_id == run.run_id]
    c = {k: v for (rid, k), v in marks.cpu.items() if rid == run.run_id}
    return RunTimes(
        seconds=[b - a for a, b in zip([t0, *stamps], stamps, strict=False)],
        early_cpu_ms=window_cpu_ms(c, early_marks),
        late_cpu_ms=window_cpu_ms(c, late_marks),
        cpu_ms=cpu_ms,
    )


def window_cpu_ms(cpu_at: dict[int, float], marks: list[int]) -> float:
    """Median CPU ms per step over the windows between consecutive marks: the exporters' batches
    (once a second) and garbage collections land in some windows and not in others, and one
    window must not decide the figure."""
    return median([(cpu_at[b] - cpu_at[a]) * 1000 / (b - a) for a, b in itertools.pairwise(marks)])


def early_late_ms(times: list[float]) -> tuple[float, float]:
    """(median ms of steps 5–24, median ms of the last 20 steps)."""
    return median(times[EARLY]) * 1000, median(times[-20:]) * 1000


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the Ray workers it started (agent hosts, the
    sink, the floor's actor): what the steps cost, whatever else the machine runs. Ray's own
    daemons (raylet, GCS, dashboard) are left out: they tick the same for every arm."""
    # This process by the CPU clock (nanoseconds; psutil reads clock ticks of 10 ms, which made a
    # 20-step in-process window of ~30 ms read 30 or 40 ms and late/early 1.00 or 1.33 by chance).
    total = time.process_time()
    for proc in psutil.Process().children(recursive=True):
        try:
            if not " ".join(proc.cmdline()).startswith("ray::"):
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
    if use_ray:
        start_local_ray()
    session = Session(settings, ray=False) if not use_ray else Session(settings)  # type: ignore[call-arg]
    with session:
        yield session


def ratio(name: str, value: float, goal: float) -> Figure:
    """A ratio with an upper bound as its goal."""
    return Figure(name, value, goal=f"≤ {goal:g}", met=value <= goal)


def median_row(table: Table, name: str, values: list[float]) -> None:
    """One measure: its median and every round's value."""
    unit = "×" if name.endswith("late/early") else ""
    table.add_row(name, f"{median(values):.2f}{unit}", " ".join(f"{v:.2f}" for v in values))


def main() -> None:
    """Run every arm `rounds` times and print the medians, ratios and goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="calculator items of the long run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every arm (medians)")
    parser.add_argument("--turns", type=int, default=300, help="turns of the autogen/floor arms")
    parser.add_argument("--quick", action="store_true", help="--steps 300 --rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 300, 2
    samples: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    def measure(arm: str, run: RunTimes) -> None:
        early, late = early_late_ms(run.seconds)
        keep(f"{arm} early ms/step", early)
        keep(f"{arm} run ms/step", sum(run.seconds) * 1000 / len(run.seconds))
        keep(f"{arm} late ms/step", late)
        keep(f"{arm} late/early", late / early)
        keep(f"{arm} CPU ms/step", run.cpu_ms)
        keep(f"{arm} CPU late/early", run.late_cpu_ms / run.early_cpu_ms)

    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        ray_session = stack.enter_context(bench_session(tmp, "ray", True, args.steps + 100))
        ray_clock, ray_marks = AppendClock(ray_session), CpuMarks(ray_session)
        arms: dict[str, Callable[[int], None]] = {}
        actor = Turn.remote()  # type: ignore[attr-defined]
        ray.get(actor.run.remote("warm", 0))
        # Warm every host (a run keeps one host, and runs go to them in turn): a host's first
        # turns (imports, first agent) are start-up, not a step's cost.
        for _ in range(ray_session.settings.n_hosts):
            step_times(ray_session, ray_clock, ray_marks, 30)
        autogen_ms_per_turn(6)  # autogen's imports and runtime start-up are not a turn's cost

        def autogen(r: int) -> None:
            wall, cpu = autogen_ms_per_turn(args.turns)
            keep("autogen ms/turn", wall)
            keep("autogen CPU ms/turn", cpu)

        def floor(r: int) -> None:
            wall, cpu = floor_ms_per_step(ray_turn(actor), args.turns, tmp, f"r{r}")
            keep("floor ms/step", wall)
            keep("floor CPU ms/step", cpu)

        def local_floor(r: int) -> None:
            with autogen_turns(args.turns) as turn:
                wall, cpu = floor_ms_per_step(turn, args.turns, tmp, f"local-r{r}")
            keep("in-process floor ms/step", wall)
            keep("in-process floor CPU ms/step", cpu)

        agent_actor = AgentTurn.remote()  # type: ignore[attr-defined]

        def agent_floor(r: int) -> None:
            ray.get(agent_actor.reset.remote(args.turns))
            wall, cpu = floor_ms_per_step(ray_turn(agent_actor), args.turns, tmp, f"agent-r{r}")
            keep("agent floor ms/step", wall)
            keep("agent floor CPU ms/step", cpu)

        def on_ray(r: int) -> None:
            measure("ray", step_times(ray_session, ray_clock, ray_marks, args.steps))

        arms["autogen"], arms["floor"], arms["in-process floor"] = autogen, floor, local_floor
        arms["agent floor"], arms["ray"] = agent_floor, on_ray
        if in_process_supported():
            local = stack.enter_context(bench_session(tmp, "local", False, args.steps + 100))
            local_clock, local_marks = AppendClock(local), CpuMarks(local)
            step_times(local, local_clock, local_marks, 30)  # warm up

            def in_process(r: int) -> None:
                measure("in-process", step_times(local, local_clock, local_marks, args.steps))

            arms["in-process"] = in_process
        order = list(arms)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                console.print(f"round {r + 1}/{args.rounds}: {name} ...")
                arms[name](r)
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
        ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, on Ray (wall)",
              m["ray late/early"], 1.1),
        ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, on Ray (CPU)",
              m["ray CPU late/early"], 1.1),
        ratio("per-step overhead: on Ray / parts floor (wall)",
              m["ray early ms/step"] / m["floor ms/step"], 1.5),
        ratio("per-step overhead: on Ray / parts floor (CPU of all processes)",
              m["ray CPU ms/step"] / m["floor CPU ms/step"], 1.5),
        ratio("per-step overhead: on Ray, whole run / parts floor (wall, both total / steps)",
              m["ray run ms/step"] / m["floor ms/step"], 1.5),
        Figure("agent floor on Ray: async actor running an autogen turn (ms/step)",
               m["agent floor ms/step"]),
        Figure("agent floor / parts floor (wall): the agent's turn and an async actor alone",
               m["agent floor ms/step"] / m["floor ms/step"]),
        Figure("on Ray / agent floor (wall): branchpoint's own share on Ray",
               m["ray early ms/step"] / m["agent floor ms/step"]),
    ]  # fmt: skip
    if "in-process early ms/step" in m:
        figures += [
            Figure("branchpoint in-process, steps 5–24 (ms/step)", m["in-process early ms/step"]),
            ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, in-process (wall)",
                  m["in-process late/early"], 1.1),
            ratio(f"O(1): last 20 / steps 5–24 of a {args.steps}-item run, in-process (CPU)",
                  m["in-process CPU late/early"], 1.1),
            ratio("in-process / autogen peer (wall)",
                  m["in-process early ms/step"] / m["autogen ms/turn"], 2.0),
            ratio("in-process / autogen peer (CPU)",
                  m["in-process CPU ms/step"] / m["autogen CPU ms/turn"], 2.0),
            Figure("in-process parts floor (ms/step)", m["in-process floor ms/step"]),
            Figure("in-process parts floor / autogen peer (wall): the parts alone",
                   m["in-process floor ms/step"] / m["autogen ms/turn"]),
            Figure("in-process / in-process parts floor (wall): branchpoint's own share",
                   m["in-process early ms/step"] / m["in-process floor ms/step"]),
        ]  # fmt: skip
    else:
        figures.append(
            Figure("in-process / autogen peer", None, "≤ 2", note="no ray=False session here")
        )
    report_figures("peers", figures)


if __name__ == "__main__":
    main()
