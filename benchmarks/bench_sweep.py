"""Sweep throughput: single-call forks with 0.5 s simulated model latency, sequential vs concurrent.

Each fork resamples the last step (the Verifier's turn) of a sim run, so a replay makes exactly one
LLM call. Forks go through the sweep machinery itself (`ForkBatch` with a sweep id: a sweep item,
a replay through LangGraph, an outcome row), not through CLI start-up. Every measurement forks its
own parent run, so no LLM call is answered from the record store of an earlier measurement.

    .venv/bin/python -m benchmarks.bench_sweep [--forks 256] [--sequential-forks 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Measurement:
    """Forks replayed at one concurrency and how long they took."""

    concurrency: int
    forks: int
    seconds: float
    llm_calls_per_fork: float

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
    started = time.perf_counter()
    (outcomes,) = batch.outcomes([(last, None)], forks)
    seconds = time.perf_counter() - started
    session.flush()
    rows = session.store.query(
        "SELECT count(*) AS n FROM llm_calls WHERE run_id IN (SELECT run_id FROM runs WHERE sweep_id = ?)",
        [sweep_id],
    )
    return Measurement(concurrency, len(outcomes), seconds, rows[0]["n"] / len(outcomes))


def report(sequential: Measurement, concurrent: list[Measurement]) -> str:
    """The table: forks/s per concurrency and the ratio to sequential."""
    lines = [
        f"{'concurrency':>11} {'forks':>6} {'seconds':>8} {'forks/s':>8} {'calls/fork':>10} {'× seq':>6}"
    ]
    for m in [sequential, *concurrent]:
        ratio = m.forks_per_s / sequential.forks_per_s
        lines.append(
            f"{m.concurrency:>11} {m.forks:>6} {m.seconds:>8.1f} {m.forks_per_s:>8.2f} "
            f"{m.llm_calls_per_fork:>10.2f} {ratio:>6.1f}"
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
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Session(Settings(db_path=Path(tmp) / "bench.duckdb")) as session,
    ):
        parents = seed_parents(session, 1 + len(args.concurrency))
        sequential = measure(session, parents[0], args.sequential_forks, 1)
        concurrent = [
            measure(session, p, args.forks, c)
            for p, c in zip(parents[1:], args.concurrency, strict=True)
        ]
    print(
        f"sweep throughput, model {MODEL} (0.5 s per LLM call); sequential measured on "
        f"{sequential.forks} forks, concurrent on {args.forks}"
    )
    print(report(sequential, concurrent))


if __name__ == "__main__":
    main()
