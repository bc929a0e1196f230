"""Commands that execute a team: run, fork, replay."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from branchpoint.cli.common import (
    AddressOpt,
    CheckpointerOpt,
    DbOpt,
    InProcessOpt,
    app,
    console,
    existing_db_settings,
    fail_if_all_errored,
    run_progress,
    run_summary,
    settings_from,
    use_ray,
    user_errors,
)
from branchpoint.errors import BranchpointError

if TYPE_CHECKING:
    from branchpoint.api import RunPlan, Session
    from branchpoint.model import Run


@app.command()
@user_errors
def run(
    team: Annotated[
        str,
        typer.Option(
            help="Team: a built-in name (math, magentic, code, math-pot), pkg.module:attr, "
            "a team file (.toml/.yaml) or autogen:PATH.json; see `branchpoint teams`."
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
    in_process: InProcessOpt = False,
) -> None:
    """Run a team on tasks; every step is traced, checkpointed and forkable."""
    from branchpoint.api import Session, plan_runs
    from branchpoint.orchestrator.checkpoints import checkpointer_kind

    ray = use_ray(in_process, address)
    settings = settings_from(db, address, checkpointer)
    checkpointer_kind(settings.checkpointer)  # refused before the trace database is made
    plan = plan_runs(
        tasks, team=team, model=model, limit=limit, seed=seed, fault_rate=fault_rate,
        settings=settings,
    )  # fmt: skip
    if plan.left_out and not plan.tasks:
        raise BranchpointError(
            f"sim can follow none of the {plan.left_out} tasks in {tasks}: it plays only tasks "
            "with a worked arithmetic solution ending in a numeric answer (GSM8K style); use "
            "--tasks builtin, or a real model (--model local or openai:NAME@URL) for these"
        )
    if plan.left_out:
        console.print(
            f"[dim]sim: left out {plan.left_out} tasks whose worked solution it cannot follow[/dim]"
        )
    with Session(settings=settings, ray=ray) as session:
        if resume:
            plan = session.unfinished(plan)
            console.print(f"resume: {plan.already_run} tasks already run")
        runs = runs_with_progress(session, plan, concurrency)
    run_summary(runs)
    fail_if_all_errored(runs)


def runs_with_progress(session: Session, plan: RunPlan, concurrency: int) -> list[Run]:
    """Run a plan behind a progress bar that counts succeeded / failed / errored runs."""
    with run_progress(plan.team.name, plan.model, len(plan.tasks)) as done:
        return session.run_plan(plan, concurrency=concurrency, on_done=done)


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
    in_process: InProcessOpt = False,
) -> None:
    """Fork a run at a step with an intervention and replay it."""
    from branchpoint.api import Session
    from branchpoint.model import ReplaceMessage, Resample
    from branchpoint.orchestrator.fork import parse_intervention

    if intervention is not None and edit is not None:
        raise BranchpointError("give --intervention FILE or --edit TEXT, not both")
    if intervention is not None:
        if not intervention.is_file():
            raise BranchpointError(
                f"intervention file not found: {intervention}"
                if not intervention.exists()
                else f"intervention file {intervention} is not a regular file; pass a JSON file"
            )
        try:
            text = intervention.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise BranchpointError(
                f"intervention file {intervention} is not UTF-8 JSON text; write it as JSON"
            ) from None
        iv = parse_intervention(text, step)
    elif edit is not None and not edit.strip():
        raise BranchpointError(
            "--edit needs the new message text; to replay step k unchanged, leave --edit out"
        )
    else:
        iv = ReplaceMessage(step=step, content=edit) if edit else Resample(step=step)
    with Session(
        settings=existing_db_settings(db, address, checkpointer), ray=use_ray(in_process, address)
    ) as session:
        runs = session.fork(run_id, iv, repeats=repeats)
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
    in_process: InProcessOpt = False,
) -> None:
    """Re-execute a run against the LLM record store alone (no model call) and compare its steps."""
    from branchpoint.api import Session

    with Session(
        settings=existing_db_settings(db, address, checkpointer), ray=use_ray(in_process, address)
    ) as session:
        report = session.replay(run_id)
    console.print(report.render())
    if not report.identical:
        raise typer.Exit(1)
