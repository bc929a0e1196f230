"""Sweep throughput: single-call forks with 0.5 s simulated model latency, sequential vs concurrent.

Each fork resamples the last step (the Verifier's turn) of a sim run, so a replay makes exactly one
LLM call. Forks go through the sweep machinery itself (`ForkBatch` with a sweep id: a sweep item,
a replay through LangGraph, an outcome row), not through CLI start-up. Every measurement forks its
own parent run, so no LLM call is answered from the record store of an earlier measurement.

    .venv/bin/python -m benchmarks.bench_sweep [--forks 256] [--sequential-forks 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.common import Figure, report_figures, start_local_ray
from branchpoint.agents.teams import MATH
from branchpoint.interventions.pipeline import DebugConfig, ForkBatch
from branchpoint.interventions.sweep import SweepSpec, create_sweep
from branchpoint.model import Resample, Run
from branchpoint.orchestrator.runner import run_tasks, sim_tasks
from branchpoint.orchestrator.runs import load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings
from branchpoint.tasks import load_tasks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_test_first200.jsonl"
MODEL = "sim:0.5"
CONCURRENCY = (8, 32, 128)
PARTS = ("driver", "sink", "hosts", "ray")


def cpu_seconds() -> Counter[str]:
    """CPU seconds used so far by this driver and the local Ray it started, by part."""
    me = psutil.Process(os.getpid())
    used: Counter[str] = Counter()
    for proc in [me, *me.children(recursive=True)]:
        try:
            title, times = " ".join(proc.cmdline()), proc.cpu_times()
        except psutil.Error:
            continue
        part = (
            "driver"
            if proc.pid == me.pid
            else "sink"
            if "TraceSink" in title
            else "hosts"
            if "AgentHost" in title
            else "ray"
        )
        used[part] += times.user + times.system
    return used


@dataclass(frozen=True)
class Measurement:
    """Forks replayed at one concurrency and how long they took."""

    concurrency: int
    forks: int
    seconds: float
    llm_calls_per_fork: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per fork, by part

    @property
    def cpu_per_fork(self) -> float:
        """CPU seconds one fork costs in all processes together."""
        return sum(self.cpu.values())

    @property
    def forks_per_s(self) -> float:
        """Throughput."""
        return self.forks / self.seconds


def seed_parents(session: Session, n: int) -> list[Run]:
    """`n` finished sim runs (no fault, so the Verifier's last turn ends every replay)."""
    tasks, _ = sim_tasks(load_tasks(DATA))
    runs = run_tasks(session, MATH, tasks[:n], MODEL, concurrency=n)
    assert all(r.status != "errored" for r in runs), [r.error for r in runs]
    return runs


def measure(session: Session, parent: Run, forks: int, concurrency: int) -> Measurement:
    """Replay `forks` resamples of the parent's last step as one sweep, `concurrency` at a time."""
    steps = load_steps(session.store, parent)
    sweep_id = create_sweep(
        session.store, SweepSpec(run_ids=(parent.run_id,), methods=(), repeats=forks)
    )
    config = DebugConfig(methods=(), repeats=forks, concurrency=concurrency, sweep_id=sweep_id)
    batch = ForkBatch(session, parent, steps, [], config)
    last = Resample(step=len(steps) - 1)
    started, cpu_before = time.perf_counter(), cpu_seconds()
    (outcomes,) = batch.outcomes([(last, None)], forks)
    session.flush()  # the forks' spans are part of their cost
    seconds, cpu_used = time.perf_counter() - started, cpu_seconds() - cpu_before
    rows = session.store.query(
        "SELECT count(*) AS n FROM llm_calls WHERE run_id IN (SELECT run_id FROM runs WHERE sweep_id = ?)",
        [sweep_id],
    )
    n = len(outcomes)
    cpu = {part: cpu_used[part] / n for part in PARTS}
    return Measurement(concurrency, n, seconds, rows[0]["n"] / n, cpu)


def report(sequential: Measurement, concurrent: list[Measurement]) -> str:
    """The table: forks/s per concurrency and the ratio to sequential."""
    cpu_cols = " ".join(f"{'ms ' + p:>9}" for p in PARTS)
    lines = [
        f"{'concurrency':>11} {'forks':>6} {'seconds':>8} {'forks/s':>8} {'calls/fork':>10} "
        + f"{'× seq':>6} {'cpu ms/fork':>11} {cpu_cols}"
    ]
    for m in [sequential, *concurrent]:
        ratio = m.forks_per_s / sequential.forks_per_s
        parts = " ".join(f"{1000 * m.cpu[p]:>9.0f}" for p in PARTS)
        lines.append(
            f"{m.concurrency:>11} {m.forks:>6} {m.seconds:>8.1f} {m.forks_per_s:>8.2f} "
            f"{m.llm_calls_per_fork:>10.2f} {ratio:>6.1f} {1000 * m.cpu_per_fork:>11.0f} {parts}"
        )
    cores = psutil.cpu_count() or 1
    best = min(m.cpu_per_fork for m in concurrent)
    lines.append(
        f"CPU ceiling on {cores} cores: {cores / best:.1f} forks/s "
        f"(= {cores / best / sequential.forks_per_s:.1f}× sequential); load average now "
        f"{os.getloadavg()[0]:.1f}"
    )
    return "\n".join(lines)


def main() -> None:
    """Seed parent runs, measure sequential and concurrent sweeps side by side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=256, help="forks per concurrent measurement")
    parser.add_argument(
        "--sequential-forks", type=int, default=16, help="forks for the sequential baseline"
    )
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCY))
    parser.add_argument("--hosts", type=int, default=Settings().n_hosts, help="AgentHost actors")
    parser.add_argument("--quick", action="store_true", help="--forks 128 --sequential-forks 8")
    args = parser.parse_args()
    if args.quick:
        args.forks, args.sequential_forks = 128, 8
    settings = Settings(n_hosts=args.hosts)
    start_local_ray()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Session(settings.with_overrides(db_path=Path(tmp) / "bench.duckdb")) as session,
    ):
        parents = seed_parents(session, 1 + len(args.concurrency))
        sequential = measure(session, parents[0], args.sequential_forks, 1)
        concurrent = [
            measure(session, p, args.forks, c)
            for p, c in zip(parents[1:], args.concurrency, strict=True)
        ]
    print(
        f"sweep throughput, model {MODEL} (0.5 s per LLM call); sequential measured on "
        f"{sequential.forks} forks, concurrent on {args.forks}; {args.hosts} AgentHost actors"
    )
    print(report(sequential, concurrent))
    figures = [
        Figure(
            f"sweep throughput at concurrency {m.concurrency} (× sequential)",
            m.forks_per_s / sequential.forks_per_s,
            goal="≥ 30" if m.concurrency == 128 else "",
            met=m.forks_per_s / sequential.forks_per_s >= 30 if m.concurrency == 128 else None,
            note=f"{m.forks} forks of {MODEL}",
        )
        for m in concurrent
    ]
    report_figures("bench_sweep", figures)


if __name__ == "__main__":
    main()
