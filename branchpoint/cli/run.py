"""Commands that execute a team: run, fork, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from branchpoint.cli.common import (
    AddressOpt,
    CheckpointerOpt,
    DbOpt,
    app,
    console,
    fail_if_all_errored,
    run_summary,
    run_with_progress,
    settings_from,
    user_errors,
)
from branchpoint.errors import BranchpointError


@app.command()
@user_errors
def run(
    team: Annotated[
        str,
        typer.Option(
            help="Team: a built-in name (math, magentic), pkg.module:attr, a team file "
            "(.toml/.yaml) or autogen:PATH.json; see `branchpoint teams`."
        ),
    ] = "math",
    tasks: Annotated[
        str, typer.Option(help="Task file (GSM8K, GSM-Plus, HumanEval JSONL) or 'builtin'.")
    ] = "builtin",
    model: Annotated[
        str | None,
        typer.Option(
            help="sim | local | local:/path.gguf | openai:NAME@URL | team (each agent's own "
            "model; the default for autogen teams); default: local"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Run at most N tasks.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="Runs at the same time.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for sampling and sim faults.")] = 0,
    fault_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="sim: share of runs that get one injected fault."),
    ] = 0.5,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip tasks that already have a finished run of this team, model and seed "
            "in the database (continue an interrupted run).",
        ),
    ] = False,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Run a team on tasks; every step is traced, checkpointed and forkable."""
    from branchpoint.agents.team_registry import resolve_team
    from branchpoint.orchestrator.runner import (
        finished_task_ids,
        plan_faults,
        preflight_model,
        sim_tasks,
    )
    from branchpoint.orchestrator.session import Session, is_sim
    from branchpoint.tasks import load_tasks

    team_spec = resolve_team(team)
    model = model or team_spec.default_model or "local"
    settings = settings_from(db, address, checkpointer)
    task_list = load_tasks(tasks, None if is_sim(model) else limit)
    preflight_model(model, team_spec, settings)
    faults = {}
    if is_sim(model):
        task_list, skipped = sim_tasks(task_list)
        task_list = task_list[:limit]
        if skipped:
            console.print(
                f"[dim]sim: left out {skipped} tasks whose worked solution it cannot follow[/dim]"
            )
        faults = plan_faults(task_list, fault_rate, seed)
    with Session(settings) as session:
        if resume:
            done = finished_task_ids(session.store, team_spec.name, model, seed)
            console.print(f"resume: {len(done & {t.task_id for t in task_list})} tasks already run")
            task_list = [t for t in task_list if t.task_id not in done]
        runs = run_with_progress(
            session, team_spec, task_list, model, seed=seed, concurrency=concurrency, faults=faults
        )
    run_summary(runs)
    fail_if_all_errored(runs)


@app.command()
@user_errors
def fork(
    run_id: Annotated[str, typer.Argument(help="Run to fork.")],
    step: Annotated[int, typer.Option(min=0, help="Step k to edit; steps before it are shared.")],
    intervention: Annotated[Path | None, typer.Option(help="Intervention JSON file.")] = None,
    edit: Annotated[
        str | None, typer.Option(help="Shortcut: replace step k's message with TEXT.")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, max=1000, help="Replays of the fork.")] = 1,
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Fork a run at a step with an intervention and replay it."""
    from branchpoint.model import ReplaceMessage, Resample
    from branchpoint.orchestrator.fork import fork_run, parse_intervention
    from branchpoint.orchestrator.session import Session

    if intervention is not None and edit is not None:
        raise BranchpointError("give --intervention FILE or --edit TEXT, not both")
    if intervention is not None:
        if not intervention.is_file():
            raise BranchpointError(f"intervention file not found: {intervention}")
        try:
            text = intervention.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BranchpointError(
                f"intervention file {intervention} is not UTF-8 JSON text; write it as JSON"
            ) from None
        iv = parse_intervention(text, step)
    else:
        iv = ReplaceMessage(step=step, content=edit) if edit else Resample(step=step)
    with Session(settings_from(db, address, checkpointer)) as session:
        runs = fork_run(session, run_id, iv, repeats=repeats)
    console.print(f"fork of {run_id} at step {step}: {iv.kind} ({iv.intervention_id})")
    run_summary(runs, title="forks")
    fail_if_all_errored(runs)


@app.command()
@user_errors
def replay(
    run_id: Annotated[str, typer.Argument(help="Run to re-execute from recorded LLM calls.")],
    db: DbOpt = None,
    address: AddressOpt = None,
    checkpointer: CheckpointerOpt = None,
) -> None:
    """Re-execute a run against the LLM record store alone (no model call) and compare its steps."""
    from branchpoint.orchestrator.replay import replay_run
    from branchpoint.orchestrator.session import Session

    with Session(settings_from(db, address, checkpointer)) as session:
        report = replay_run(session, run_id)
    console.print(report.render())
    if not report.identical:
        raise typer.Exit(1)
