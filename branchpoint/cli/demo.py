"""The main job on embedded defaults: `branchpoint demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from branchpoint.cli.common import (
    DbOpt,
    MethodsOpt,
    app,
    console,
    make_judge,
    parse_methods,
    run_summary,
    run_with_progress,
    settings_from,
    sweep_with_progress,
    user_errors,
    verdict_table,
)


@app.command()
@user_errors
def demo(
    model: Annotated[str, typer.Option(help="Model for the team and the judge.")] = "local",
    limit: Annotated[int, typer.Option(help="Built-in tasks to run.")] = 3,
    methods: MethodsOpt = "dover",
    repeats: Annotated[int, typer.Option(help="Replays per intervention (and per control).")] = 2,
    curve_repeats: Annotated[int, typer.Option(help="Resamples per step for the value curve.")] = 1,
    db: DbOpt = None,
) -> None:
    """The main job on embedded defaults: run the math team on built-in tasks, then debug failures."""
    from branchpoint.agents.teams import MATH
    from branchpoint.interventions.sweep import SweepSpec, create_sweep
    from branchpoint.orchestrator.session import Session
    from branchpoint.tasks import builtin_tasks

    tasks = builtin_tasks()[:limit]
    with Session(settings_from(db)) as session:
        console.rule(f"1. the math team on {len(tasks)} built-in tasks ({model})")
        runs = run_with_progress(session, MATH, tasks, model, concurrency=2)
        run_summary(runs)
        failed = tuple(r.run_id for r in runs if r.status == "failed")
        if not failed:
            console.print("no failed runs to debug")
            return
        console.rule(f"2. debugging {len(failed)} failed run(s) by intervention")
        spec = SweepSpec(
            run_ids=failed,
            methods=parse_methods(methods),
            repeats=repeats,
            curve_repeats=curve_repeats,
            judge_model=model,
        )
        sweep_id = create_sweep(session.store, spec)
        reports = sweep_with_progress(
            session, sweep_id, spec, make_judge(session, model), concurrency=2
        )
    verdict_table(reports)
    console.print(
        f'traces: {settings_from(db).db_path}  —  try: branchpoint sql "SELECT * FROM verdicts"'
    )
