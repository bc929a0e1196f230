"""The debugger on real failures of the embedded models: code and program-of-thought teams.

1. Runs the `code` team on HumanEval and the `math-pot` team on GSM-Plus with the 0.5B model
   (`--team-model`); tasks that already have a finished run are skipped (resumable).
2. Debugs up to `--failures` failed runs per family. Hypotheses: `value_curve` (resample forks at
   every model step, judge-free), `dover` and `ldb` (judge: `--judge`, the 1.5B model). Arms, each
   `--repeats` forks: the method's recommended intervention, `runtime_trace` and `swap_model`
   (the blamed agent on the stronger model) at the blamed step, `resample` controls at the same
   step; plus the model-upgrade sweep: each model agent's first step forked with `swap_model` for
   that agent only, beside `resample` controls. Forks are sweep items with stable ids, so a killed
   benchmark resumes without re-running a scored fork; a debugged run is saved in a state file.
3. Prints the tables (arms with Wilson intervals, difference to controls with Fisher's exact
   test, milestones, tokens, minutes; per method whether the blamed step beats other steps).

Usage: .venv/bin/python -m benchmarks.bench_real [--humaneval 164] [--humaneval-from 0] [--gsmplus 60]
                                                 [--failures 30]
       .venv/bin/python -m benchmarks.bench_real --methods "" --arms upgrade,upgrade_control
                                                # the judge-free model-upgrade arms only
       .venv/bin/python -m benchmarks.bench_real --redo ldb    # ldb again where it found nothing
       .venv/bin/python -m benchmarks.bench_real --report      # tables of what is finished
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import DATA
from benchmarks.debugger_tables import real_tables
from branchpoint.agents.code_team import CODE
from branchpoint.agents.pot_team import POT
from branchpoint.agents.teams import TeamSpec
from branchpoint.cli.common import make_judge, progress_bar, run_with_progress
from branchpoint.interventions import attribution
from branchpoint.interventions.ldb import ldb_hypothesis, runtime_trace_at
from branchpoint.interventions.pipeline import DebugConfig, ForkBatch, fix_arms, milestones_for
from branchpoint.interventions.recommend import leaks, recommend
from branchpoint.interventions.segment import segment_by_kinds
from branchpoint.interventions.sweep import SweepSpec, create_sweep
from branchpoint.interventions.upgrade import upgrade_arm, upgrade_hypotheses
from branchpoint.model import Hypothesis, Intervention, Resample, Run, Step, Task
from branchpoint.orchestrator.fork import check_fits
from branchpoint.orchestrator.runner import finished_task_ids
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings
from branchpoint.tasks import load_tasks

FAMILIES: dict[str, tuple[TeamSpec, str]] = {
    "code": (CODE, "HumanEval.jsonl.gz"),
    "math": (POT, "gsmplus_testmini_dev.jsonl"),
}
METHODS = ("value_curve", "dover", "ldb")
ARMS = (
    "recommended",
    "runtime_trace",
    "swap_model",
    "resample",
    "upgrade",
    "upgrade_control",
)


def family_tasks(family: str, args: argparse.Namespace) -> list[Task]:
    """The family's tasks this benchmark runs: `--humaneval` HumanEval problems from
    `--humaneval-from`, or the first `--gsmplus` GSM-Plus problems."""
    data = FAMILIES[family][1]
    if family == "code":
        start = args.humaneval_from
        return load_tasks(DATA / data, limit=start + args.humaneval)[start:]
    return load_tasks(DATA / data, limit=args.gsmplus)


def make_runs(session: Session, family: str, args: argparse.Namespace) -> float:
    """Run the family's team on its tasks (skipping finished ones); minutes spent."""
    team = FAMILIES[family][0]
    tasks = family_tasks(family, args)
    done = finished_task_ids(session.store, team.name, args.team_model, args.seed)
    todo = [t for t in tasks if t.task_id not in done]
    started = time.perf_counter()
    if todo:
        run_with_progress(
            session, team, todo, args.team_model, seed=args.seed, concurrency=args.concurrency
        )
    return (time.perf_counter() - started) / 60


def root_runs(session: Session, family: str, args: argparse.Namespace) -> list[dict]:
    """The family's root runs on its tasks, in task order."""
    team = FAMILIES[family][0]
    order = {t.task_id: i for i, t in enumerate(family_tasks(family, args))}
    rows = session.store.query(
        "SELECT run_id, task_id, status, success, input_tokens, output_tokens, seconds FROM runs "
        "WHERE team = ? AND model = ? AND seed = ? AND parent_run_id IS NULL "
        "AND status IN ('succeeded', 'failed')",
        [team.name, args.team_model, args.seed],
    )
    rows = [r for r in rows if r["task_id"] in order]
    return sorted(rows, key=lambda r: order[r["task_id"]])


def hypotheses(
    run: Run,
    steps: list[Step],
    curve: dict[int, float],
    judge: Any,
    repeats: int,
    methods: Sequence[str] = METHODS,
) -> tuple[list[Hypothesis], list[str]]:
    """The chosen methods' hypotheses on one failed run, and why a method gave none."""
    found: list[Hypothesis] = []
    failures: list[str] = []
    if "value_curve" in methods:
        hyp = attribution.value_curve_hypothesis(run, steps, curve, repeats)
        found += [hyp] if hyp else []
        failures += [] if hyp else ["value_curve: flat"]
    if "dover" in methods:
        dover = attribution.dover_propose(run, steps, segment_by_kinds(steps), judge)
        found += dover.hypotheses
        failures += [f"dover: {f}" for f in dover.failures]
    if "ldb" in methods:
        ldb = ldb_hypothesis(run, steps, judge)
        found += ldb.hypotheses
        failures += [f"ldb: {f}" for f in ldb.failures]
    return found, failures


def arms_for(
    run: Run, steps: list[Step], team: TeamSpec, hyps: Sequence[Hypothesis], strong: str
) -> list[tuple[str, str, Intervention]]:
    """(role, method, intervention) for every arm to replay; shared arms are listed once each."""
    arms: list[tuple[str, str, Intervention]] = []
    for hyp in hyps:
        # A blamed tool result is fixed at the turn that called the tool (`fix_arms`).
        fixes = fix_arms(recommend(hyp, run, steps), steps, team, strong)
        if len(fixes) < 2:  # the fix's turn calls no model: no swap_model arm to compare
            continue
        recommended, swap = fixes
        at = recommended.step
        candidates: list[tuple[str, Intervention | None]] = [
            ("recommended", recommended),
            ("runtime_trace", runtime_trace_at(run, steps, at, hyp.reason)),
            ("swap_model", swap),
            ("resample", Resample(step=at)),
        ]
        for role, iv in candidates:
            if iv is None or leaks(iv, run.task):
                continue
            check_fits(iv, steps, team)
            arms.append((role, hyp.method, iv))
    for hyp in upgrade_hypotheses(run, steps, team):  # what `branchpoint upgrade` forks
        arms.append(("upgrade", hyp.agent, upgrade_arm(hyp, strong)))
        arms.append(("upgrade_control", hyp.agent, Resample(step=hyp.step)))
    return arms


def debug_failure(
    session: Session,
    run_id: str,
    judge: Any,
    sweep_id: str,
    args: argparse.Namespace,
    plan: tuple[list[str], set[str]],
) -> dict[str, Any]:
    """Hypotheses, arms and their scored forks for one failed run (a JSON-able record), by the
    methods and arm roles of `plan`."""
    methods, roles = plan
    run = load_run(session.store, run_id)
    steps = load_steps(session.store, run)
    team = FAMILIES[args.family_of[run.team]][0]
    config = DebugConfig(repeats=args.repeats, concurrency=args.concurrency, sweep_id=sweep_id)
    batch = ForkBatch(session, run, steps, milestones_for(run, None), config)
    model_steps = [s.index for s in steps if team.agent(s.agent).calls_model]
    curve: dict[int, float] = {}
    if "value_curve" in methods:  # resample forks at every model step
        curve_runs = batch.outcomes([(Resample(step=k), None) for k in model_steps], args.repeats)
        curve = {k: sum(o.success for o in g) / len(g) for k, g in zip(model_steps, curve_runs)}
    hyps, failures = hypotheses(run, steps, curve, judge, args.repeats, methods)
    arms = [a for a in arms_for(run, steps, team, hyps, args.strong) if a[0] in roles]
    unique = list({iv.intervention_id: iv for _, _, iv in arms}.values())
    results = dict(
        zip(
            (iv.intervention_id for iv in unique),
            batch.outcomes([(iv, None) for iv in unique], args.repeats),
        )
    )
    return {
        "run_id": run_id,
        "task_id": run.task.task_id,
        "methods": methods,
        "roles": sorted(roles),
        "steps": [{"index": s.index, "agent": s.agent, "kind": s.kind} for s in steps],
        "curve": {str(k): v for k, v in curve.items()},
        "hypotheses": [
            {"method": h.method, "agent": h.agent, "step": h.step, "reason": h.reason[:300]}
            for h in hyps
        ],
        "failures": failures,
        "arms": [
            {
                "role": role,
                "method": method,
                "kind": iv.kind,
                "step": iv.step,
                "intervention_id": iv.intervention_id,
                "outcomes": [o.model_dump() for o in results[iv.intervention_id]],
            }
            for role, method, iv in arms
        ],
    }


def load_state(path: Path) -> dict[str, Any]:
    """Saved progress (debugged runs and the sweep ids), or a fresh state."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {"sweeps": {}, "debug": {}, "minutes": {}}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the progress atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def debug_family(
    session: Session, family: str, judge: Any, state: dict[str, Any], path: Path, args: Any
) -> None:
    """Debug up to args.failures failed runs of a family, saving after each."""
    failed = [r["run_id"] for r in root_runs(session, family, args) if not r["success"]]
    chosen = failed[: args.failures]
    if family not in state["sweeps"]:
        spec = SweepSpec(run_ids=tuple(chosen), methods=tuple(args.methods), repeats=args.repeats)
        state["sweeps"][family] = create_sweep(session.store, spec)
        save_state(path, state)
    plans = {
        r: debug_plan(state["debug"].get(r), args.methods, args.arms, args.redo) for r in chosen
    }
    todo = [r for r in chosen if plans[r] is not None]
    # Failures debugged before with fewer methods or arms: the longest runs first (most steps).
    todo.sort(key=lambda r: -len(state["debug"].get(r, {}).get("steps", [])))
    with progress_bar() as bar:
        job = bar.add_task(f"debug {family}", total=len(chosen), completed=len(chosen) - len(todo))
        for run_id in todo:
            started = time.perf_counter()
            old = state["debug"].get(run_id)
            plan = plans[run_id]
            assert plan is not None
            record = debug_failure(session, run_id, judge, state["sweeps"][family], args, plan)
            record["family"] = family
            record["minutes"] = (time.perf_counter() - started) / 60 + (
                old["minutes"] if old else 0.0
            )
            state["debug"][run_id] = record
            save_state(path, state)
            bar.update(job, advance=1)


def debugged_methods(record: dict[str, Any] | None) -> set[str]:
    """The hypothesis methods a saved record was debugged with (older records: from its content)."""
    if record is None:
        return set()
    if "methods" in record:
        return set(record["methods"])
    named = [h["method"] for h in record["hypotheses"]] + [
        f.split(":")[0] for f in record["failures"]
    ]
    return set(named) | ({"value_curve"} if record["curve"] else set())


def debug_plan(
    record: dict[str, Any] | None,
    methods: Sequence[str],
    roles: set[str],
    redo: Sequence[str] = (),
) -> tuple[list[str], set[str]] | None:
    """The methods and arm roles to debug a failure with now, the saved record's kept (its scored
    forks are sweep items and the judge's calls are recorded, so they are read back without a
    model call); None when the record has them all. A method in `redo` that gave the record no
    hypothesis is tried again (after a change to the method)."""
    had_methods = debugged_methods(record)
    had_roles = set(record.get("roles") or [a["role"] for a in record["arms"]]) if record else set()
    found = {h["method"] for h in record["hypotheses"]} if record else set()
    retry = (set(redo) & had_methods) - found
    if record is not None and set(methods) <= had_methods and roles <= had_roles and not retry:
        return None
    wanted = had_methods | set(methods)
    return [m for m in METHODS if m in wanted], had_roles | roles


def main() -> None:
    """Runs, debugging and tables; every phase resumes from what the database already holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("bench_real.duckdb"))
    parser.add_argument("--humaneval", type=int, default=164, help="HumanEval problems to run")
    parser.add_argument(
        "--humaneval-from", type=int, default=0, help="index of the first HumanEval problem"
    )
    parser.add_argument("--gsmplus", type=int, default=60, help="GSM-Plus problems to run")
    parser.add_argument("--failures", type=int, default=30, help="failures debugged per family")
    parser.add_argument("--repeats", type=int, default=3, help="forks per arm (R)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--team-model", default="local", help="the team's model (0.5B)")
    parser.add_argument("--strong", default="local:coder-1.5b", help="swap_model target")
    parser.add_argument("--judge", default="local:coder-1.5b", help="judge of dover and ldb")
    parser.add_argument("--families", default="code,math")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="hypothesis methods, comma-separated; empty: only the judge-free upgrade arms",
    )
    parser.add_argument(
        "--arms", default=",".join(ARMS), help="arm roles to replay, comma-separated"
    )
    parser.add_argument(
        "--redo",
        default="",
        help="methods to try again on saved failures where they gave no hypothesis, comma-separated",
    )
    parser.add_argument("--runs-only", action="store_true", help="make the runs, debug nothing")
    parser.add_argument("--report", action="store_true", help="print the tables only")
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    args.arms = {a for a in args.arms.split(",") if a}
    args.redo = [m for m in args.redo.split(",") if m]
    for name, chosen, known in (
        ("method", args.methods, METHODS),
        ("method", args.redo, METHODS),
        ("arm", args.arms, ARMS),
    ):
        if unknown := set(chosen) - set(known):
            parser.error(f"unknown {name} {sorted(unknown)}; choose from {', '.join(known)}")
    args.family_of = {team.name: family for family, (team, _) in FAMILIES.items()}
    families = [f for f in args.families.split(",") if f]
    path = args.db.with_suffix(".state.json")
    state = load_state(path)
    # In-process: one copy of each model in this process (agent turns serialised on it), no Ray.
    with Session(Settings(db_path=args.db), ray=False) as session:
        if not args.report:
            for family in families:
                minutes = make_runs(session, family, args)
                state["minutes"][family] = state["minutes"].get(family, 0.0) + minutes
                save_state(path, state)
        if not (args.report or args.runs_only):
            saved = [debugged_methods(r) for r in state["debug"].values()]
            needs_judge = {"dover", "ldb"} & set(args.methods).union(*saved)
            judge = make_judge(session, args.judge) if needs_judge else None
            for family in families:
                debug_family(session, family, judge, state, path, args)
        runs = {f: root_runs(session, f, args) for f in families}
    real_tables(runs, state, args)


if __name__ == "__main__":
    main()
