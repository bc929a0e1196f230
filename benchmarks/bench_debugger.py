"""Debugger accuracy on `sim` runs with one injected fault each: localisation, flips, controls.

Runs the math team (sim backend) on GSM8K problems the sim can solve, each with one seeded fault
(`random_fault`, recurrence R: the chance the fault recurs when its step is re-sampled), keeps
the runs that failed, and debugs each with `debug_run` (value curve + the injected ground truth
as hypotheses; rule-based recommendations; R replays per intervention beside R resample controls).
The LLM baselines (all-at-once, step-by-step, binary search, DoVer) then attribute the first
`--judge-runs` failed runs with the real local model as judge.

Everything is kept in a state file beside the trace database, so an interrupted run resumes
where it stopped (forks already scored are not re-run: the debug config carries a sweep id);
the tables are printed from whatever is finished.

Usage: .venv/bin/python -m benchmarks.bench_debugger [--runs 100] [--judge-runs 15] [--recurrence 0.7]
       .venv/bin/python -m benchmarks.bench_debugger --report   # tables of the saved state only
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from benchmarks.common import DATA, console, scratch_session
from benchmarks.debugger_tables import CURVE_METHODS, print_tables
from branchpoint.agents.sim import random_fault
from branchpoint.agents.teams import MATH
from branchpoint.cli.common import progress_bar, run_with_progress
from branchpoint.interventions.pipeline import (
    JUDGE_METHODS,
    DebugConfig,
    RunDebug,
    debug_run,
    hypothesize,
)
from branchpoint.interventions.segment import segment_by_kinds
from branchpoint.interventions.sweep import SweepSpec, create_sweep
from branchpoint.orchestrator.runner import sim_tasks
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.tasks import load_tasks


def load_state(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The saved progress of a benchmark with the same config, or a fresh one."""
    if path.exists():
        state = json.loads(path.read_text())
        if state["config"] == config:
            return state
        console.print(
            f"[yellow]{path} holds another config; starting afresh (use --db to keep both)[/yellow]"
        )
    return {"config": config, "runs": {}, "sweep_id": None, "debug": {}, "judge": {}}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the progress atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def make_runs(
    session: Session, state: dict[str, Any], n: int, recurrence: float, seed: int
) -> None:
    """The faulty sim runs (once; their ids are saved)."""
    if state["runs"]:
        return
    tasks, _ = sim_tasks(load_tasks(DATA / "gsm8k_test_first200.jsonl"))
    tasks = tasks[:n]
    rng = random.Random(seed)
    faults = {t.task_id: (random_fault(t, rng, recurrence=recurrence),) for t in tasks}
    runs = run_with_progress(session, MATH, tasks, "sim", seed=seed, concurrency=2, faults=faults)
    state["runs"] = {
        r.task.task_id: {"run_id": r.run_id, "status": r.status, "fault": r.faults[0].model_dump()}
        for r in runs
    }


def debug_record(report: RunDebug, fault: dict[str, Any]) -> dict[str, Any]:
    """What the tables need from one debugged run."""
    return {
        "fault": fault,
        "n_steps": len(report.steps),
        "agents": [s.agent for s in report.steps],
        "curve": {str(k): v for k, v in report.curve.items()},
        "hyps": [{"method": h.method, "agent": h.agent, "step": h.step} for h in report.hypotheses],
        "tests": [
            {
                "method": t.hypothesis.method,
                "step": t.intervention.step,
                "kind": t.intervention.kind,
                "n": t.verdict.n,
                "successes": t.verdict.successes,
                "label": t.verdict.label,
                "control_n": t.verdict.control_n,
                "control_successes": t.verdict.control_successes,
            }
            for t in report.tests
        ],
        "failures": [str(f) for f in report.failures],
    }


def debug_failed(
    session: Session, state: dict[str, Any], path: Path, args: argparse.Namespace
) -> None:
    """`debug_run` over every failed run not yet debugged, saving after each."""
    failed = [(v["run_id"], v["fault"]) for v in state["runs"].values() if v["status"] == "failed"]
    todo = [(rid, f) for rid, f in failed if rid not in state["debug"]]
    if state["sweep_id"] is None:
        state["sweep_id"] = create_sweep(
            session.store,
            SweepSpec(
                run_ids=tuple(r for r, _ in failed),
                methods=CURVE_METHODS,
                repeats=args.repeats,
                curve_repeats=args.curve_repeats,
            ),
        )
        save_state(path, state)
    config = DebugConfig(
        methods=CURVE_METHODS,
        repeats=args.repeats,
        curve_repeats=args.curve_repeats,
        concurrency=args.concurrency,
        sweep_id=state["sweep_id"],
    )
    with progress_bar() as bar:
        runs_job = bar.add_task(
            "debugged runs", total=len(failed), completed=len(failed) - len(todo), status=""
        )
        forks_job = bar.add_task("forks", total=None, status="")
        for run_id, fault in todo:
            report = debug_run(
                session,
                run_id,
                config,
                on_fork=lambda o: None if o is None else bar.update(forks_job, advance=1),
            )
            record = debug_record(report, fault)
            state["debug"][run_id] = record
            save_state(path, state)
            hit = [h for h in record["hyps"] if h["method"] == "value_curve"]
            bar.update(
                runs_job,
                advance=1,
                status="curve " + ("hit" if hit and hit[0]["step"] == fault["step"] else "miss"),
            )


def judge_failed(session: Session, state: dict[str, Any], path: Path, n: int) -> None:
    """The LLM baselines with the real local model as judge on the first n debugged runs."""
    from branchpoint.agents.backends import make_chat_client, parse_model_spec
    from branchpoint.agents.recording import RecordingClient, TraceRecordStore
    from branchpoint.interventions.judge import ChatClientJudge

    subset = list(state["debug"])[:n]
    todo = [
        (rid, m) for rid in subset for m in JUDGE_METHODS if m not in state["judge"].get(rid, {})
    ]
    if not todo:
        return
    client = make_chat_client(parse_model_spec("local"), session.settings)
    judge = ChatClientJudge(RecordingClient(client, TraceRecordStore(session.store), "local"))
    with progress_bar() as bar:
        job = bar.add_task(
            "LLM baselines (local 0.5B)",
            total=len(subset) * len(JUDGE_METHODS),
            completed=len(subset) * len(JUDGE_METHODS) - len(todo),
            status="",
        )
        for run_id, method in todo:
            run = load_run(session.store, run_id)
            steps = load_steps(session.store, run)
            result = hypothesize(run, steps, segment_by_kinds(steps), method, judge, {})
            state["judge"].setdefault(run_id, {})[method] = {
                "hyps": [{"agent": h.agent, "step": h.step} for h in result.hypotheses],
                "failures": result.failures[:3],
            }
            save_state(path, state)
            bar.update(job, advance=1, status=f"{method} {run_id}")


def main() -> None:
    """Make the runs, debug them, run the LLM baselines, print the tables (resumable)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=100, help="sim runs to make (each with one fault)"
    )
    parser.add_argument(
        "--judge-runs", type=int, default=15, help="failed runs the LLM baselines judge"
    )
    parser.add_argument(
        "--recurrence", type=float, default=0.7, help="chance a re-sampled fault recurs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curve-repeats", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="fork replays at once")
    parser.add_argument("--db", type=Path, default=Path("/tmp/branchpoint-bench/debugger.duckdb"))
    parser.add_argument(
        "--report", action="store_true", help="only print the tables of the saved state (no runs)"
    )
    args = parser.parse_args()
    config = {
        "runs": args.runs,
        "recurrence": args.recurrence,
        "seed": args.seed,
        "curve_repeats": args.curve_repeats,
        "repeats": args.repeats,
    }
    args.db.parent.mkdir(parents=True, exist_ok=True)
    path = args.db.with_suffix(".bench.json")
    state = load_state(path, config)
    if args.report:
        print_tables(state)
        return
    if not state["runs"] and args.db.exists():
        # A fresh benchmark starts from empty stores.
        for f in args.db.parent.glob(args.db.stem + "*"):
            if f != path:
                f.unlink()
    try:
        with scratch_session(args.db) as session:
            make_runs(session, state, args.runs, args.recurrence, args.seed)
            save_state(path, state)
            debug_failed(session, state, path, args)
            if args.judge_runs > 0:
                judge_failed(session, state, path, args.judge_runs)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted; partial tables follow (rerun the same command to resume)[/yellow]"
        )
    print_tables(state)


if __name__ == "__main__":
    main()
