"""What a step owes to the size of what it carries: the sim math team's per-step cost at plans of
100, 1,000 and 3,000 items, on Ray and in-process.

`peers.py` measures steps of a 1,000-item chain task: the Planner's plan (about 50 KB) and the
task's worked solution travel with the run, and every step's request carries the plan, so each
step hashes it (twice for the sim: in the messages and in the sim's hashed parameters), puts it
in the chat span's prompt, and stores it with the LLM record. The parts floor carries nothing.
Here runs of each size are capped at the same number of steps and alternated in one session; the
figure is the median time between consecutive steps 5–54 (the step index is the same for every
size, so the differences are the size's, not the run length's).

Usage: .venv/bin/python -m benchmarks.step_size [--rounds 5] [--sizes 100,1000,3000] [--quick]
                                                [--no-ray]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from benchmarks.common import AppendClock, Figure, chain_task, console, median, report_figures
from benchmarks.peers import bench_session
from branchpoint.agents.teams import MATH
from branchpoint.orchestrator.runner import run_task

STEPS = 60  # each run stops here, whatever its size
WINDOW = slice(5, 55)  # the gaps between steps measured


def per_step_ms(ray: bool, sizes: list[int], rounds: int) -> dict[int, float]:
    """Median ms between consecutive steps 5–54, per plan size, sizes alternated per round."""
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    mode = "Ray" if ray else "in-process"
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        bench_session(Path(tmp), "traces", ray, STEPS) as session,
    ):
        clock = AppendClock(session)
        run_task(session, MATH, chain_task(min(sizes)), "sim")  # warm-up
        for r in range(rounds):
            for n in sizes if r % 2 == 0 else sizes[::-1]:
                run = run_task(session, MATH, chain_task(n), "sim")
                session.flush()  # the next run starts with no export pending
                stamps = [t for t, step in clock.stamps if step.run_id == run.run_id]
                gaps = [b - a for a, b in itertools.pairwise(stamps)][WINDOW]
                samples[n].append(median(gaps) * 1000)
                console.print(f"round {r + 1}/{rounds} {mode} {n} items: {samples[n][-1]:.2f} ms")
    return {n: median(values) for n, values in samples.items()}


def main() -> None:
    """Time each size in each mode and report the largest size's cost over the smallest's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,3000", help="plan sizes (items)")
    parser.add_argument("--no-ray", action="store_true", help="in-process only")
    parser.add_argument("--quick", action="store_true", help="--rounds 3")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    sizes = sorted(int(s) for s in args.sizes.split(","))
    figures: list[Figure] = []
    for ray in [False] if args.no_ray else [True, False]:
        mode = "on Ray" if ray else "in-process"
        ms = per_step_ms(ray, sizes, rounds)
        figures += [Figure(f"sim step {mode}, plan of {n:,} items (ms)", ms[n]) for n in sizes]
        small, large = sizes[0], sizes[-1]
        figures.append(
            Figure(f"sim step {mode}, {large:,} items / {small:,} items", ms[large] / ms[small])
        )
    for figure in figures:
        console.print(f"{figure.name}: {figure.value:.3f}")
    report_figures("step_size", figures)


if __name__ == "__main__":
    main()
