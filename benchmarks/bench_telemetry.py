"""Telemetry benchmark: span ingestion into DuckDB (spans/s) and tracing overhead per step.

Run: .venv/bin/python -m benchmarks.bench_telemetry [--spans N] [--steps N] [--no-ray] [--quick]
Goals: >= 250,000 spans/s end to end (the exporter's conversion of finished spans to Arrow and
the writer's inserts, one after the other in one process); tracing <= 5% of a sim math-team step
(the team run in-process, and on Ray unless --no-ray, with `Settings.tracing` on and off).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import Attributes

from benchmarks.common import Figure, report_figures
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.exporter import spans_to_table
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import MAX_EXPORT_BATCH, flush, setup_tracing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
INGESTION_GOAL = 250_000


def recorded_spans(n: int) -> list[ReadableSpan]:
    """About `n` finished spans shaped like a sim run's: per run a run span and 6 steps, each
    with a chat span under it, carrying the attributes the orchestrator and hosts set."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    made = 0
    while made < n:
        run_id = f"run-{made:012x}"
        with tracer.start_as_current_span("branchpoint.run", attributes=_run_attrs(run_id)):
            made += 1
            for step in range(6):
                agent = ("Planner", "Solver", "Verifier")[step % 3]
                with (
                    tracer.start_as_current_span(
                        f"invoke_agent {agent}", attributes=_step_attrs(run_id, step, agent)
                    ),
                    tracer.start_as_current_span(
                        "chat sim", attributes=_chat_attrs(run_id, step, agent)
                    ),
                ):
                    pass
                made += 2
    provider.shutdown()
    return list(memory.get_finished_spans())


def _run_attrs(run_id: str) -> Attributes:
    task = {"task_id": "gsm8k-7", "question": "q" * 200, "answer": "42", "source": "gsm8k"}
    return {
        A.KIND: "run",
        A.OPERATION: "invoke_workflow",
        A.RUN_ID: run_id,
        A.TEAM: "math",
        A.TASK_ID: "gsm8k-7",
        A.TASK: json.dumps(task),
        A.REQUEST_MODEL: "sim",
        A.SEED: 7,
        A.STATUS: "failed",
        A.SUCCESS: False,
        A.FINAL_ANSWER: "41",
        A.THREAD_ID: f"thread-{run_id}",
        A.FAULTS: '[{"agent": "Solver", "step": 1, "kind": "wrong_operand"}]',
        A.INPUT_TOKENS: 900,
        A.OUTPUT_TOKENS: 120,
    }


def _step_attrs(run_id: str, step: int, agent: str) -> Attributes:
    return {
        A.KIND: "step",
        A.OPERATION: "invoke_agent",
        A.RUN_ID: run_id,
        A.STEP: step,
        A.AGENT_NAME: agent,
        A.STEP_KIND: "message",
        A.CONTENT: "c" * 160,
        A.CHECKPOINT_ID: f"1ef{step:029x}",
        A.INTERVENED: False,
        A.NODE_ID: "a" * 56,
        A.INPUT_TOKENS: 150,
        A.OUTPUT_TOKENS: 20,
    }


def _chat_attrs(run_id: str, step: int, agent: str) -> Attributes:
    return {
        A.KIND: "chat",
        A.OPERATION: "chat",
        A.RUN_ID: run_id,
        A.STEP: step,
        A.AGENT_NAME: agent,
        A.REQUEST_MODEL: "sim",
        A.INPUT_TOKENS: 150,
        A.OUTPUT_TOKENS: 20,
        A.PROMPT: "p" * 400,
        A.COMPLETION: "c" * 160,
        A.REQUEST_HASH: "f" * 64,
        A.CACHED: False,
        A.NODE_ID: "a" * 56,
        A.OI_KIND: "LLM",
        A.OI_MODEL: "sim",
    }


@dataclass(frozen=True)
class Ingestion:
    """Spans/s of the two parts of ingestion, measured on the same spans."""

    convert: float  # exporter side: finished spans -> Arrow batches (in every traced process)
    store: float  # writer side: Arrow batches -> DuckDB, final checkpoint included
    end_to_end: float  # both in one process, one after the other


def ingestion_rates(spans: list[ReadableSpan], batch: int = MAX_EXPORT_BATCH) -> Ingestion:
    """Spans/s converted by the exporter and stored by `DuckDBTraceStore.write_spans`."""
    n = len(spans)
    started = time.perf_counter()
    tables = [spans_to_table(spans[i : i + batch]) for i in range(0, n, batch)]
    convert = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBTraceStore(Path(tmp) / "bench.duckdb")
        started = time.perf_counter()
        for table in tables:
            store.write_spans(table)
        store.close()  # the checkpoint that moves the WAL into the file is part of the cost
        write = time.perf_counter() - started
    return Ingestion(convert=n / convert, store=n / write, end_to_end=n / (convert + write))


def sim_turn(i: int) -> str:
    """A stand-in for one `sim` agent turn: render the prompt, hash the request, serialise state."""
    history = [
        f"[Step {k}] Agent{k % 3}: the value is {k * 7 % 13}" for k in range(max(0, i - 8), i)
    ]
    prompt = "You are Solver. Solve the task.\n" + "\n".join(history)
    request_hash = hashlib.sha256(prompt.encode()).hexdigest()
    reply = f"[Step {i}] Solver: operand {int(request_hash[:6], 16) % 97}"
    json.dumps({"messages": history + [reply], "ledger": {"plan": ["a", "b"], "step": i}})
    return reply


def time_steps(step_fn: Callable[[int], str], n: int, traced: bool) -> float:
    """Seconds to run `n` steps of `step_fn`, each (if traced) in a step span with a chat span
    under one run span, exported to a DuckDB store; includes the final flush."""
    if not traced:
        started = time.perf_counter()
        for i in range(n):
            step_fn(i)
        return time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBTraceStore(Path(tmp) / "overhead.duckdb")
        provider = setup_tracing(store, "bench")
        tracer = provider.get_tracer("bench")
        started = time.perf_counter()
        with tracer.start_as_current_span(
            "branchpoint.run", attributes={A.KIND: "run", A.RUN_ID: "r"}
        ):
            for i in range(n):
                with tracer.start_as_current_span(
                    "invoke_agent Solver",
                    attributes={A.KIND: "step", A.RUN_ID: "r", A.STEP: i, A.AGENT_NAME: "Solver"},
                ) as step:
                    with tracer.start_as_current_span(
                        "chat sim", attributes={A.KIND: "chat", A.RUN_ID: "r", A.STEP: i}
                    ) as chat:
                        reply = step_fn(i)
                        chat.set_attribute(A.COMPLETION, reply)
                    step.set_attribute(A.CONTENT, reply)
        flush(provider)
        elapsed = time.perf_counter() - started
        provider.shutdown()
        store.close()
    return elapsed


def overhead(step_fn: Callable[[int], str], n: int, repeats: int = 5) -> tuple[float, float]:
    """Median seconds per step (untraced, traced), alternating the two arms to share noise."""
    plain, traced = [], []
    for _ in range(repeats):
        plain.append(time_steps(step_fn, n, traced=False) / n)
        traced.append(time_steps(step_fn, n, traced=True) / n)
    return statistics.median(plain), statistics.median(traced)


class _TurnHost:
    """A Ray actor running `sim_turn`, as an AgentHost runs a sim agent's turn."""

    def turn(self, i: int) -> str:
        return sim_turn(i)


def ray_turn_fn() -> Callable[[int], str]:
    """A step function that runs `sim_turn` in a Ray actor (the real path of a sim step)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    host = ray.remote(num_cpus=0)(_TurnHost).remote()
    return lambda i: str(ray.get(host.turn.remote(i)))  # type: ignore[attr-defined]


def sim_team_seconds_per_step(traced: bool, n_tasks: int, workdir: Path, use_ray: bool) -> float:
    """Seconds per step of the real sim math team (graph, durable checkpoints, agent hosts on Ray
    or in-process), traced or not (`Settings.tracing`)."""
    from branchpoint.agents.teams import MATH
    from branchpoint.orchestrator.runner import run_tasks, sim_tasks
    from branchpoint.orchestrator.session import Session
    from branchpoint.settings import Settings
    from branchpoint.tasks import load_tasks

    tasks, _ = sim_tasks(load_tasks(DATA / "gsm8k_test_first200.jsonl"))
    db = workdir / f"team-{'traced' if traced else 'plain'}-{time.monotonic_ns()}.duckdb"
    with Session(Settings(db_path=db, tracing=traced), ray=use_ray) as session:
        run_tasks(session, MATH, tasks[:2], "sim", concurrency=1)  # warm up hosts and graph
        started = time.perf_counter()
        runs = run_tasks(session, MATH, tasks[:n_tasks], "sim", concurrency=1)
        elapsed = time.perf_counter() - started
    return elapsed / sum(r.n_steps for r in runs)


def sim_team_overhead(n_tasks: int, use_ray: bool, repeats: int = 3) -> tuple[float, float]:
    """Median seconds per sim-team step (untraced, traced), arms alternated to share noise."""
    plain, traced = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            plain.append(sim_team_seconds_per_step(False, n_tasks, Path(tmp), use_ray))
            traced.append(sim_team_seconds_per_step(True, n_tasks, Path(tmp), use_ray))
    return statistics.median(plain), statistics.median(traced)


def team_figures(label: str, plain: float, traced: float) -> list[Figure]:
    """A sim team's step untraced and traced, and the share of a traced step that is tracing."""
    share = (traced - plain) / traced * 100
    return [
        Figure(f"{label}, untraced (ms/step)", plain * 1e3),
        Figure(f"{label}, traced (ms/step)", traced * 1e3),
        Figure(f"{label}, tracing share of a step (%)", share, "≤ 5", share <= 5),
    ]


def main() -> None:
    """Print the benchmark table and report its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray-actor step variants")
    parser.add_argument("--team-tasks", type=int, default=20, help="sim tasks per arm, end to end")
    parser.add_argument(
        "--quick", action="store_true", help="50,000 spans, 300 steps, in-process team only"
    )
    args = parser.parse_args()
    if args.quick:
        args.spans, args.steps, args.no_ray = 50_000, 300, True
    spans = recorded_spans(args.spans)
    rates = max((ingestion_rates(spans) for _ in range(3)), key=lambda r: r.end_to_end)
    figures = [
        Figure(
            "ingestion end to end (spans/s)",
            rates.end_to_end,
            "≥ 250,000",
            rates.end_to_end >= INGESTION_GOAL,
            f"{len(spans):,} spans, best of 3",
        ),
        Figure("exporter converts spans to Arrow (spans/s)", rates.convert),
        Figure("sink writes Arrow batches (spans/s)", rates.store),
    ]
    variants: list[tuple[str, Callable[[int], str], int]] = [
        ("in-process sim turn", sim_turn, args.steps)
    ]
    if not args.no_ray:
        variants.append(("sim turn in a Ray actor", ray_turn_fn(), max(1, args.steps // 4)))
    for label, step_fn, n in variants:
        plain, traced = overhead(step_fn, n)
        figures += [
            Figure(f"{label}, untraced (us/step)", plain * 1e6),
            Figure(f"{label}, traced (us/step)", traced * 1e6),
            # A bare stand-in turn of a few microseconds: the cost of its three spans, no goal
            # (the goal is on a whole team step, below).
            Figure(f"{label}, tracing cost (us/step)", (traced - plain) * 1e6),
        ]
    figures += team_figures(
        "sim math team in-process", *sim_team_overhead(args.team_tasks, use_ray=False)
    )
    if not args.no_ray:
        figures += team_figures("sim math team on Ray", *sim_team_overhead(args.team_tasks, True))
    for f in figures:
        print(f"{f.name:<50}{f.value:>14,.1f}  {f.goal}")
    report_figures("bench_telemetry", figures)


if __name__ == "__main__":
    main()
