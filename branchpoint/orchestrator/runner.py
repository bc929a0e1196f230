"""Running teams on tasks: one run end to end, many runs concurrently, with a run span each."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig

from branchpoint.agents import scorers
from branchpoint.agents.backends import check_endpoint, parse_model_spec, redact_model
from branchpoint.agents.local_model import resolve_gguf
from branchpoint.agents.sim import DEFAULT_RECURRENCE, random_fault, sim_solvable
from branchpoint.agents.teams import TeamSpec
from branchpoint.errors import AgentTurnError, BranchpointError, first_line
from branchpoint.model import Fault, Run, Task
from branchpoint.orchestrator.graph import TEAM_MODEL, RunContext, TeamState, start_state
from branchpoint.orchestrator.session import Session, is_sim
from branchpoint.settings import Settings
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.store import TraceStorageError, TraceStore


@contextmanager
def worker_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that drops the work not yet started when interrupted, so Ctrl-C stops a
    long job after the runs in flight instead of after every queued one."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def preflight_model(model: str, team: TeamSpec, session_settings: Settings) -> None:
    """Fail fast, before any run starts, on a model that cannot work."""
    if model == TEAM_MODEL:  # every agent on its own model: check each one that has a spec
        for own in {a.model for a in team.agents if a.model}:
            preflight_model(own, team, session_settings)
        return
    if is_sim(model):
        if team.name != "math":
            raise BranchpointError("the sim backend simulates the math team only; use --team math")
        return
    spec = parse_model_spec(model)
    if spec.backend == "local":
        resolve_gguf(spec.path, session_settings.model_cache, embedded=spec.name)
    elif spec.backend == "openai":
        check_endpoint(spec)


def user_error(exc: BaseException) -> str:
    """The one-line message of an error, unwrapping Ray's task errors and a failed turn's."""
    wrapped = is_ray_error(exc) or isinstance(exc, AgentTurnError)
    cause = getattr(exc, "cause", None) if wrapped else None
    cause = cause if isinstance(cause, BaseException) else exc
    return f"{type(cause).__name__}: {cause}".splitlines()[0][:500]


def is_ray_error(exc: BaseException) -> bool:
    """Whether `exc` is one of Ray's errors (checked without importing Ray in-process)."""
    return any(c.__module__.startswith("ray.") for c in type(exc).__mro__)


def run_attributes(run: Run) -> dict[str, Any]:
    """The attributes of a run's span that describe the run itself (its outcome is set later)."""
    return {
        **A.run_identity(run),
        A.THREAD_ID: run.thread_id or "",
        A.FAULTS: json.dumps([f.model_dump() for f in run.faults]),
        **({A.TEAM_SOURCE: run.team_source.model_dump_json()} if run.team_source else {}),
        **({A.SWEEP_ID: run.sweep_id} if run.sweep_id else {}),
    }


# Returns the graph input (None: resume from the config's checkpoint) and the config.
Prepare = Callable[[], tuple[TeamState | None, RunnableConfig]]


def execute_run(
    session: Session,
    run: Run,
    ctx: RunContext,
    prepare: Prepare,
    lineage: Mapping[str, Any] | None = None,
) -> Run:
    """Invoke (or resume) a graph for one run inside its run span; returns the finished Run.

    `prepare` runs inside the span and returns the graph input and config (a fork applies its
    edit there, so the edit is part of the fork's trace).
    """
    graph = session.graph(ctx.team)
    started = session.clock.monotonic()
    attrs = {**run_attributes(run), **(lineage or {})}
    status, final_answer, error, success = "errored", None, None, False
    with session.tracer.start_as_current_span("branchpoint.run", attributes=attrs) as span:
        ctx.run_span = span
        try:
            graph_input, config = prepare()
            final = graph.invoke(graph_input, config, context=ctx, durability="sync")
            final_answer = final.get("final_answer")
            scorer = ctx.team.score or scorers.default
            success = scorer(run.task, final_answer, session.messages.chain(final.get("head")))
            status = "succeeded" if success else "failed"
        except sqlite3.Error as exc:  # checkpoints or messages: the command cannot go on
            raise TraceStorageError(
                f"could not write the checkpoints and messages beside {session.settings.db_path} "
                f"({first_line(exc)}); free disk space or fix the files, then run again with "
                "--resume"
            ) from None
        except Exception as exc:
            if not (isinstance(exc, BranchpointError) or is_ray_error(exc)):
                raise
            error = user_error(exc)
        steps = ctx.steps
        done = run.model_copy(
            update={
                "status": status,
                "final_answer": final_answer,
                "success": success,
                "error": error,
                "input_tokens": sum(s.input_tokens for s in steps),
                "output_tokens": sum(s.output_tokens for s in steps),
                "seconds": session.clock.monotonic() - started,
                "n_steps": len(steps),
            }
        )
        span.set_attributes(
            {
                A.STATUS: status,
                A.SUCCESS: success,
                A.FINAL_ANSWER: final_answer or "",
                A.ERROR: error or "",
                A.INPUT_TOKENS: done.input_tokens,
                A.OUTPUT_TOKENS: done.output_tokens,
                A.N_STEPS: done.n_steps,
                A.OI_OUTPUT: final_answer or "",
            }
        )
    return done


def run_context(
    session: Session, run: Run, team: TeamSpec, record_mode: str = "record"
) -> RunContext:
    """The per-run services a graph's nodes use, for a new run or a fork."""
    return RunContext(
        run_id=run.run_id,
        team=team,
        task=run.task,
        seed=run.seed,
        faults=run.faults,
        messages=session.messages,
        tracer=session.tracer,
        run_span=None,  # type: ignore[arg-type]  # set by execute_run when the span starts
        call_host=session.hosts.call,
        max_steps=session.settings.max_steps,
        record_mode=record_mode,
    )


def run_task(
    session: Session,
    team: TeamSpec,
    task: Task,
    model: str,
    seed: int = 0,
    faults: Iterable[Fault] = (),
    sweep_id: str | None = None,
    record_mode: str = "record",
) -> Run:
    """Run a team on one task from the start."""
    model = redact_model(model)  # credentials in an endpoint URL are never stored
    run_id = session.new_run_id()
    run = Run(
        run_id=run_id,
        task=task,
        team=team.name,
        model=model,
        seed=seed,
        faults=tuple(faults),
        thread_id=run_id,
        sweep_id=sweep_id,
        team_source=team.source,
    )
    ctx = run_context(session, run, team, record_mode)
    config: RunnableConfig = {"configurable": {"thread_id": run_id}}
    return execute_run(session, run, ctx, lambda: (start_state(ctx, model), config))


def plan_faults(
    tasks: list[Task], fault_rate: float, seed: int, recurrence: float = DEFAULT_RECURRENCE
) -> dict[str, tuple[Fault, ...]]:
    """Seeded random faults for sim runs: each task gets one with probability `fault_rate`."""
    rng = random.Random(seed)
    return {
        t.task_id: (random_fault(t, rng, recurrence),) if rng.random() < fault_rate else ()
        for t in tasks
    }


def finished_task_ids(store: TraceStore, team: str, model: str, seed: int) -> set[str]:
    """Tasks that already have a finished root run (succeeded or failed, not errored) of this
    team, model and seed in the trace database: what `run --resume` skips."""
    rows = store.query(
        "SELECT DISTINCT task_id FROM runs WHERE team = ? AND model = ? AND seed = ? "
        "AND parent_run_id IS NULL AND status IN ('succeeded', 'failed')",
        [team, redact_model(model), seed],
    )
    return {r["task_id"] for r in rows}


ORPHAN_KINDS = ("step", "chat", "tool")


def remove_orphan_spans(store: Any) -> int:
    """Delete the step, chat and tool spans of runs that never finished (their process was
    killed before the run span was written), so `steps` holds no run without a `runs` row.

    Only for `run --resume`: the trace database is then this process's alone, so a run without
    a run span cannot still be in flight."""
    kinds = ", ".join(f"'{k}'" for k in ORPHAN_KINDS)
    orphans = (
        f"kind IN ({kinds}) AND run_id IS NOT NULL AND run_id NOT IN "
        "(SELECT run_id FROM spans WHERE kind = 'run' AND run_id IS NOT NULL)"
    )
    count = store.query(f"SELECT count(*) AS n FROM spans WHERE {orphans}")[0]["n"]
    if count:
        store.query(f"DELETE FROM spans WHERE {orphans}")
    return int(count)


def sim_tasks(tasks: list[Task]) -> tuple[list[Task], int]:
    """The tasks the sim can solve, and how many were left out."""
    kept = [t for t in tasks if sim_solvable(t)]
    return kept, len(tasks) - len(kept)


def run_tasks(
    session: Session,
    team: TeamSpec,
    tasks: list[Task],
    model: str,
    *,
    seed: int = 0,
    concurrency: int = 2,
    faults: Mapping[str, tuple[Fault, ...]] | None = None,
    on_done: Callable[[Run], None] | None = None,
    preflight: bool = True,
) -> list[Run]:
    """Run a team on many tasks, `concurrency` at a time; results in task order. `preflight`
    False: the caller has checked the model already (`api.plan_runs`)."""
    if preflight:
        preflight_model(model, team, session.settings)
    results: dict[int, Run] = {}
    with worker_pool(concurrency) as pool:
        futures = {
            pool.submit(
                run_task, session, team, task, model, seed, (faults or {}).get(task.task_id, ())
            ): i
            for i, task in enumerate(tasks)
        }
        for future in as_completed(futures):
            run = future.result()
            results[futures[future]] = run
            if on_done is not None:
                on_done(run)
    session.flush()
    return [results[i] for i in range(len(tasks))]
