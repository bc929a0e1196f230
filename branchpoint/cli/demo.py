"""The main job on embedded defaults: `branchpoint demo`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from branchpoint.cli.common import (
    DbOpt,
    MethodsOpt,
    RepeatsOpt,
    app,
    console,
    make_judge,
    parse_methods,
    progress_bar,
    run_summary,
    run_with_progress,
    settings_from,
    user_errors,
    verdict_table,
)


@app.command()
@user_errors
def demo(
    team: Annotated[str, typer.Option(help="Team: code (built-in code tasks) or math.")] = "code",
    model: Annotated[str, typer.Option(help="The team's model.")] = "local",
    strong: Annotated[
        str, typer.Option(help="Stronger model for the swap_model arm and the judge.")
    ] = "local:coder-1.5b",
    limit: Annotated[int, typer.Option(min=1, help="Built-in tasks to run.")] = 2,
    methods: MethodsOpt = "ldb",
    repeats: RepeatsOpt = 3,
    seed: Annotated[int, typer.Option(help="Seed of the runs and their forks.")] = 0,
    ray: Annotated[
        bool, typer.Option("--ray/--in-process", help="Agent turns on a local Ray, or in-process.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Run a team on built-in tasks with the embedded model, then debug its failures: hypotheses,
    fixes replayed beside resample controls, verdicts."""
    from branchpoint.agents.teams import get_team
    from branchpoint.api import builtin_tasks_for
    from branchpoint.errors import BranchpointError
    from branchpoint.interventions.pipeline import JUDGE_METHODS, DebugConfig, debug_run
    from branchpoint.orchestrator.runner import is_sim, plan_faults, preflight_model
    from branchpoint.orchestrator.session import Session

    team_spec = get_team(team)
    available = builtin_tasks_for(team_spec)
    tasks = available[:limit]
    if team_spec.name not in ("code", "math"):
        raise BranchpointError("the demo runs the built-in code or math team: --team code|math")
    # In-process by default: one copy of each model, shared by every turn, on every core (a
    # laptop's cores are better spent on one model than on each Ray host's own copy).
    settings = settings_from(db)
    # In-process, one generation runs at a time anyway (local_model._GENERATION_LOCK): one run or
    # fork at a time loses nothing and fixes the order of the model's calls, so the default seed
    # gives the same verdicts every time (llama.cpp reuses its cache of the previous prompt).
    concurrency = 2 if ray else 1
    with Session(settings, ray=ray) as session:
        preflight_model(strong, team_spec, session.settings)
        console.rule(f"1. the {team} team on {len(tasks)} built-in tasks ({model})")
        # The sim team fails only where a fault is injected: half the runs get one (seeded).
        faults = plan_faults(tasks, 0.5, seed) if is_sim(model) else {}
        runs = run_with_progress(
            session, team_spec, tasks, model, seed=seed, concurrency=concurrency, faults=faults
        )
        run_summary(runs)
        failed = [r.run_id for r in runs if r.status == "failed"]
        if not failed:
            console.print(
                f"no failed runs to debug: all {len(runs)} succeeded; "
                f"--limit {len(available)} runs every built-in {team} task"
            )
            return
        console.rule(f"2. debugging {len(failed)} failed run(s) by intervention")
        chosen = parse_methods(methods)
        needs_judge = any(m in JUDGE_METHODS for m in chosen)
        config = DebugConfig(
            methods=chosen,
            repeats=repeats,
            curve_repeats=1,
            concurrency=concurrency,
            judge=make_judge(session, strong) if needs_judge else None,
            swap_model=strong,
        )
        reports = debug_with_progress(session, failed, config, debug_run)
    verdict_table(reports)
    print_validated(reports)
    console.print(f'traces: {settings.db_path}  —  try: branchpoint sql "SELECT * FROM verdicts"')


def debug_with_progress(session: Any, run_ids: list[str], config: Any, debug_run: Any) -> list:
    """`debug_run` over each failed run behind a progress bar of finished forks."""
    from branchpoint.cli.common import fork_label

    reports = []
    counts: dict[str, int] = {"succeeded": 0, "still failing": 0, "not carried out": 0}
    with progress_bar() as bar:
        runs_job = bar.add_task("debugged runs", total=len(run_ids), status="")
        forks_job = bar.add_task("forks", total=None, status="")

        def on_fork(outcome: Any) -> None:
            if outcome is not None:
                counts[fork_label(outcome)] += 1
                status = " · ".join(f"{k} {v}" for k, v in counts.items())
                bar.update(forks_job, advance=1, status=status)

        for run_id in run_ids:
            reports.append(debug_run(session, run_id, config, on_fork))
            bar.update(runs_job, advance=1)
    return reports


def print_validated(reports: list[Any]) -> None:
    """One line per validated fix, with its interval and the control arm beside it."""
    for report in reports:
        for t in report.tests:
            v = t.verdict
            if v.label != "validated":
                continue
            console.print(
                f"[green]validated[/green] {report.run.task.task_id}: {t.intervention.kind} at "
                f"step {t.intervention.step} ({t.hypothesis.agent}) succeeded {v.successes}/{v.n} "
                f"(Wilson 95% [{v.wilson_low:.2f}, {v.wilson_high:.2f}]) vs resample controls "
                f"{v.control_successes}/{v.control_n} at the same step"
            )
