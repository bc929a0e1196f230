"""Fork cost vs fork step, and checkpoint storage vs run length, side by side in one run.

1. One long `sim` run of the math team on a synthetic task with ~1000 calculator items (the
   Solver does one item per step, so the run has items + 2 steps). It is forked with `resample`
   (repeats=1) at step 10 and at step 1000. "Time to first new step" runs from the call of
   `fork_run` until the fork's first step is recorded (the message-store append that
   `record_step` makes right after the turn). It includes everything a fork does first: flushing
   telemetry, loading the parent run and its steps, restoring the checkpoint, `update_state`,
   and the one new agent turn on a Ray host. The step limit is set to k+1 during the fork so
   the fork ends after that step instead of finishing the run. Forks alternate between the two
   steps; the median of several repetitions is reported. Naive re-execution is what re-running
   the prefix would cost: the time the original run took to reach step k.
2. Checkpoint bytes of an N-step and a 2N-step run: the run thread's rows in LangGraph's SQLite
   `checkpoints` (checkpoint + metadata blobs) and `writes` tables, plus the run's rows in the
   append-only message store.

Usage: .venv/bin/python benchmarks/bench_fork.py [--items 1000] [--reps 5] [--n 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from rich.table import Table

from benchmarks.common import (
    AppendClock,
    Figure,
    chain_task,
    console,
    median,
    report_figures,
    scratch_session,
    set_max_steps,
)
from branchpoint.agents.teams import MATH
from branchpoint.model import Resample
from branchpoint.orchestrator.fork import fork_run, replay_fork
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.orchestrator.session import Session


def fork_first_step(
    session: Session, clock: AppendClock, run_id: str, k: int
) -> tuple[float, float]:
    """(seconds to the fork's first new step, seconds of the whole fork call) for a resample at k."""
    set_max_steps(session, k + 1)
    t0 = time.perf_counter()
    [fork] = fork_run(session, run_id, Resample(step=k), repeats=1)
    total = time.perf_counter() - t0
    assert fork.n_steps == 1, f"fork at {k} took {fork.n_steps} steps"
    return clock.first_after(t0), total


def replay_first_step(session: Session, clock: AppendClock, run_id: str, k: int, rep: int) -> float:
    """Seconds to the first new step of `replay_fork` alone (parent and steps already loaded)."""
    parent = load_run(session.store, run_id)
    steps = load_steps(session.store, parent)
    set_max_steps(session, k + 1)
    t0 = time.perf_counter()
    replay_fork(session, parent, steps, Resample(step=k), 100 + rep)
    return clock.first_after(t0)


def storage_bytes(session: Session, run_id: str) -> tuple[int, int]:
    """(checkpoint + writes bytes, message-store bytes) of one root run's thread."""
    with sqlite3.connect(session.settings.checkpoint_path) as con:
        ckpt = con.execute(
            "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints "
            "WHERE thread_id = ?",
            (run_id,),
        ).fetchone()[0]
        writes = con.execute(
            "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?", (run_id,)
        ).fetchone()[0]
    with sqlite3.connect(session.settings.db_path.with_suffix(".messages.sqlite")) as con:
        msgs = con.execute(
            "SELECT coalesce(sum(length(message_id) + coalesce(length(parent_id), 0) "
            "+ length(step_json)), 0) FROM messages "
            "WHERE json_extract(step_json, '$.run_id') = ?",
            (run_id,),
        ).fetchone()[0]
    return int(ckpt) + int(writes), int(msgs)


def main() -> None:
    """Run both measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="calculator items of the long run")
    parser.add_argument("--reps", type=int, default=5, help="forks per fork step (median reported)")
    parser.add_argument(
        "--n", type=int, default=200, help="items of the short run for the storage ratio"
    )
    parser.add_argument("--quick", action="store_true", help="--items 300 --reps 3 --n 100")
    args = parser.parse_args()
    if args.quick:
        args.items, args.reps, args.n = 300, 3, 100
    early, late = 10, args.items
    with scratch_session(max_steps=args.items + 100) as session:
        clock = AppendClock(session)
        run_task(
            session, MATH, chain_task(5), "sim"
        )  # warm up the hosts: startup is not a step's cost
        console.print(f"long run: {args.items} items ({args.items + 2} steps) ...")
        t0 = time.perf_counter()
        long = run_task(session, MATH, chain_task(args.items), "sim")
        assert long.status == "succeeded", long
        session.flush()
        stamps = [t for t, s in clock.stamps if s.run_id == long.run_id]
        step_s = [
            b - a for a, b in zip([t0, *stamps], stamps, strict=False)
        ]  # step_s[i]: step i's time
        reach = {k: stamps[k - 1] - t0 for k in (early, late)}  # time the run took for steps 0..k-1
        console.print(f"  {long.n_steps} steps in {long.seconds:.1f} s")

        firsts: dict[int, list[float]] = {early: [], late: []}
        totals: dict[int, list[float]] = {early: [], late: []}
        replays: dict[int, list[float]] = {early: [], late: []}
        for rep in range(args.reps):
            for k in (early, late) if rep % 2 == 0 else (late, early):
                first, total = fork_first_step(session, clock, long.run_id, k)
                firsts[k].append(first)
                totals[k].append(total)
                replays[k].append(replay_first_step(session, clock, long.run_id, k, rep))
        set_max_steps(session, args.items + 100)

        table = Table(
            title=f"fork cost vs fork step (one {long.n_steps}-step sim run, resample, "
            f"repeats=1, median of {args.reps})"
        )
        for col in ("measure", f"k={early}", f"k={late}", "ratio"):
            table.add_column(col, justify="right")

        def row(name: str, a: float, b: float) -> None:
            table.add_row(name, f"{a * 1000:.0f} ms", f"{b * 1000:.0f} ms", f"{b / a:.2f}×")

        row("fork_run call → first new step", median(firsts[early]), median(firsts[late]))
        row("whole fork_run (1 new step)", median(totals[early]), median(totals[late]))
        row("replay_fork → first new step", median(replays[early]), median(replays[late]))
        row(
            "original run: median step time around k (±5)",
            median(step_s[early - 5 : early + 6]),
            median(step_s[late - 5 : late + 6]),
        )
        row("naive: re-execute steps 0..k-1 (measured)", reach[early], reach[late])
        mean_step = sum(step_s) / len(step_s)
        row("naive: mean step time of the run × k", mean_step * early, mean_step * late)
        console.print(table)

        console.print(f"storage: runs of {args.n} and {2 * args.n} items ...")
        short = run_task(session, MATH, chain_task(args.n), "sim")
        double = run_task(session, MATH, chain_task(2 * args.n), "sim")
        assert short.status == double.status == "succeeded"
        (c1, m1), (c2, m2) = (
            storage_bytes(session, short.run_id),
            storage_bytes(session, double.run_id),
        )
        store = Table(title="checkpoint storage vs run length")
        for col in ("bytes", f"N={short.n_steps} steps", f"2N={double.n_steps} steps", "ratio"):
            store.add_column(col, justify="right")
        store.add_row("checkpoints + writes", f"{c1:,}", f"{c2:,}", f"{c2 / c1:.2f}×")
        store.add_row("message store", f"{m1:,}", f"{m2:,}", f"{m2 / m1:.2f}×")
        store.add_row("total", f"{c1 + m1:,}", f"{c2 + m2:,}", f"{(c2 + m2) / (c1 + m1):.2f}×")
        store.add_row(
            "per step (total)",
            f"{(c1 + m1) / short.n_steps:,.0f}",
            f"{(c2 + m2) / double.n_steps:,.0f}",
            "",
        )
        console.print(store)
        ratio = median(firsts[late]) / median(firsts[early])
        total_ratio = (c2 + m2) / (c1 + m1)
        report_figures(
            "bench_fork",
            [
                Figure(
                    f"fork at step {late} / at step {early}: time to first new step",
                    ratio,
                    goal="≤ 1.5",
                    met=ratio <= 1.5,
                ),
                Figure(
                    f"checkpoint + message bytes, {double.n_steps} / {short.n_steps} steps",
                    total_ratio,
                    goal="≤ 2.2",
                    met=total_ratio <= 2.2,
                ),
            ],
        )


if __name__ == "__main__":
    main()
