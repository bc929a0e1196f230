"""The public Python API behind `import branchpoint as bp` (see `branchpoint.__all__`).

A `Session` holds the trace database, checkpoints and the executor of agent turns; its methods
run teams, fork, replay and debug runs, and query the traces. The module-level functions
`bp.run`, `bp.fork`, … do the same on the session opened by the innermost `with bp.session(…)`.

    with bp.session(db=":memory:", model="sim") as s:
        [run] = s.run(tasks="builtin", limit=1, fault_rate=1.0)
        forks = s.fork(run.run_id, bp.instruct(2, "Re-check the operands."), repeats=2)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, Self, TypeVar, overload

from branchpoint.errors import BranchpointError
from branchpoint.ids import Clock, IdSource
from branchpoint.model import (
    Fault,
    Instruct,
    Intervention,
    Outcome,
    ReplaceMessage,
    ReplacePlan,
    Resample,
    Run,
    Step,
    SwapModel,
    Task,
)
from branchpoint.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa

    from branchpoint.agents.teams import TeamSpec
    from branchpoint.interventions.judge import Judge
    from branchpoint.interventions.pipeline import RunDebug
    from branchpoint.model import SweepSpec
    from branchpoint.orchestrator import session as _session
    from branchpoint.orchestrator.replay import ReplayReport

P = ParamSpec("P")
R = TypeVar("R")
RunRef = str | Run
TaskSource = str | Path | Task | Iterable[Task]
RowsFormat = Literal["rows", "arrow"]


# Intervention constructors: each names the step k it edits.


def replace_message(step: int, content: str) -> ReplaceMessage:
    """Take step k's turn as `content` (the agent is not re-run)."""
    return ReplaceMessage(step=step, content=content)


def replace_plan(step: int, *, facts: str | None = None, plan: str | None = None) -> ReplacePlan:
    """Replace the task ledger's facts and/or plan from step k on."""
    return ReplacePlan(step=step, facts=facts, plan=plan)


def instruct(step: int, instruction: str) -> Instruct:
    """Give the agent of step k a corrected instruction, then re-run step k."""
    return Instruct(step=step, instruction=instruction)


def resample(step: int) -> Resample:
    """No edit: re-run from step k with a fresh sample (the control arm)."""
    return Resample(step=step)


def swap_model(step: int, model: str) -> SwapModel:
    """Run step k onward on another model (`sim`, `local`, `openai:NAME@URL`)."""
    return SwapModel(step=step, model=model)


@dataclass(frozen=True)
class RunPlan:
    """What `Session.run` will do: the tasks left to run, the sim faults to inject, and what
    was left out (tasks the sim cannot follow; tasks a resumed run already finished)."""

    team: TeamSpec
    model: str
    seed: int
    tasks: tuple[Task, ...]
    faults: Mapping[str, tuple[Fault, ...]]
    left_out: int = 0
    already_run: int = 0
    model_checked: bool = False  # plan_runs checked the model; running it does not ask again


@dataclass(frozen=True)
class SweepResult:
    """A finished (or resumed) sweep: its id and one debug report per run it covered."""

    sweep_id: str
    reports: tuple[RunDebug, ...]

    @property
    def outcomes(self) -> list[Outcome]:
        """Every scored fork of the tested hypotheses (controls included)."""
        return [o for r in self.reports for t in r.tests for o in (*t.outcomes, *t.controls)]


_CURRENT: ContextVar[Session | None] = ContextVar("branchpoint_session", default=None)


class Session:
    """Runs, forks, replays and debugs teams, and queries their traces; a context manager.

    `db` is the trace database (a DuckDB file; `":memory:"` keeps everything in memory;
    default `$BRANCHPOINT_DB` or `branchpoint.duckdb`). `ray=False` (the default here) runs
    agent turns in this process and never starts Ray; `ray=True` runs them in Ray actors
    (a local Ray, or the cluster at `address`), as the CLI does. `model` and `team` are the
    defaults of `run` (no model: the team's own default, else the embedded `local` model).
    `ids` and `clock` make ids and recorded durations deterministic.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        model: str | None = None,
        team: str | TeamSpec = "math",
        ray: bool = False,
        address: str | None = None,
        checkpointer: str | None = None,
        settings: Settings | None = None,
        ids: IdSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        from branchpoint.orchestrator.session import Session as CoreSession

        self.settings = (settings or Settings()).with_overrides(
            db_path=Path(db) if db is not None else None,
            ray_address=address,
            checkpointer=checkpointer,
        )
        self.model = model
        self.team = team
        self.core: _session.Session = CoreSession(self.settings, ray=ray, ids=ids, clock=clock)
        self._token: Token[Session | None] | None = None
        self._judges: dict[str, Judge | None] = {}

    # lifecycle

    def close(self) -> None:
        """Flush the traces and release the database, checkpoints and agents."""
        self.core.close()

    def __enter__(self) -> Self:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        self.close()

    # running teams

    def unfinished(self, plan: RunPlan) -> RunPlan:
        """`plan` without the tasks that already have a finished root run of its team, model
        and seed in this database (what `run(resume=True)` skips). The spans of runs that
        never finished (a killed process) are removed first, so no step lacks its run."""
        from branchpoint.orchestrator.runner import finished_task_ids, remove_orphan_spans

        remove_orphan_spans(self.core.store)
        done = finished_task_ids(self.core.store, plan.team.name, plan.model, plan.seed)
        kept = tuple(t for t in plan.tasks if t.task_id not in done)
        return replace(plan, tasks=kept, already_run=len(plan.tasks) - len(kept))

    def run_plan(
        self, plan: RunPlan, *, concurrency: int = 2, on_done: Callable[[Run], None] | None = None
    ) -> list[Run]:
        """Run a plan from `plan_runs`; results in task order."""
        from branchpoint.orchestrator.runner import run_tasks

        return run_tasks(
            self.core,
            plan.team,
            list(plan.tasks),
            plan.model,
            seed=plan.seed,
            concurrency=concurrency,
            faults=plan.faults,
            on_done=on_done,
            preflight=not plan.model_checked,
        )

    def run(
        self,
        tasks: TaskSource = "builtin",
        *,
        team: str | TeamSpec | None = None,
        model: str | None = None,
        limit: int | None = None,
        seed: int = 0,
        fault_rate: float = 0.5,
        resume: bool = False,
        concurrency: int = 2,
        on_done: Callable[[Run], None] | None = None,
    ) -> list[Run]:
        """Run a team on tasks; every step is traced, checkpointed and forkable.

        `tasks`: `"builtin"`, a task file (GSM8K, GSM-Plus, HumanEval or branchpoint JSONL),
        a `Task`, or Tasks. With the sim model, tasks it cannot follow are left out and a
        `fault_rate` share of runs gets one injected fault (seeded by `seed`). `resume` skips
        tasks that already have a finished root run of this team, model and seed.
        """
        plan = plan_runs(
            tasks,
            team=team or self.team,
            model=model or self.model,
            limit=limit,
            seed=seed,
            fault_rate=fault_rate,
            settings=self.settings,
        )
        if resume:
            plan = self.unfinished(plan)
        return self.run_plan(plan, concurrency=concurrency, on_done=on_done)

    # forks and replays

    def fork(
        self,
        run: RunRef,
        intervention: Intervention | Mapping[str, Any] | str,
        *,
        repeats: int = 1,
    ) -> list[Run]:
        """Fork `run` at the intervention's step and replay it `repeats` times (new Runs with
        lineage; the steps before k are shared, not re-run). The intervention may also be
        its JSON text or dict."""
        from branchpoint.orchestrator.fork import fork_run

        return fork_run(self.core, _run_id(run), _intervention(intervention), repeats=repeats)

    def replay(self, run: RunRef) -> ReplayReport:
        """Re-execute a root run from the LLM record store alone and compare every step."""
        from branchpoint.orchestrator.replay import replay_run

        return replay_run(self.core, _run_id(run))

    # debugging

    def debug(
        self,
        runs: RunRef | Sequence[RunRef],
        *,
        methods: Sequence[str] = ("value_curve",),
        judge: str | None = None,
        repeats: int = 3,
        curve_repeats: int = 6,
        concurrency: int = 8,
        on_run: Callable[[RunDebug], None] | None = None,
        on_fork: Callable[[Outcome | None], None] | None = None,
    ) -> SweepResult:
        """The DoVer pipeline on the given runs: hypotheses by each method, each tested by
        `repeats` forked replays of its recommended intervention beside as many `resample`
        controls, and a verdict. `judge` is the model of the LLM judges (None: the value
        curve and ground truth only)."""
        from branchpoint.model import SweepSpec

        names = _methods(methods)
        ids = _run_ids(runs)
        for run_id in ids:
            self.get_run(run_id)  # an unknown id fails before any work starts
        spec = SweepSpec(
            run_ids=ids,
            methods=names,
            repeats=repeats,
            curve_repeats=curve_repeats,
            judge_model=judge,
        )
        return self.execute_sweep(spec, concurrency=concurrency, on_run=on_run, on_fork=on_fork)

    def upgrade(
        self,
        runs: RunRef | Sequence[RunRef],
        *,
        model: str,
        repeats: int = 3,
        concurrency: int = 8,
        on_run: Callable[[RunDebug], None] | None = None,
        on_fork: Callable[[Outcome | None], None] | None = None,
    ) -> SweepResult:
        """Which agent's model is worth upgrading: in each run, every agent that calls a model
        re-run from its first turn on `model` (the rest of the team unchanged), `repeats` times,
        beside as many `resample` controls; `agent_upgrades(result.reports)` sums them per
        agent with Fisher's exact test and Holm's correction. A sweep: it resumes by its id."""
        spec = self.upgrade_spec(runs, model=model, repeats=repeats)
        return self.execute_sweep(spec, concurrency=concurrency, on_run=on_run, on_fork=on_fork)

    def upgrade_spec(
        self, runs: RunRef | Sequence[RunRef], *, model: str, repeats: int = 3
    ) -> SweepSpec:
        """The sweep `upgrade` runs, checked before anything is recorded: known, replayable
        runs and a model that can work for their teams."""
        from branchpoint.agents.team_registry import team_for_run
        from branchpoint.model import SweepSpec
        from branchpoint.orchestrator.runner import preflight_model
        from branchpoint.orchestrator.runs import require_replayable

        ids = _run_ids(runs)
        if not ids:
            raise BranchpointError("no runs to upgrade: give run ids, or fail some runs first")
        teams = {}
        for run_id in ids:
            run = require_replayable(self.get_run(run_id))
            teams[run.team] = team_for_run(run)
        for team in teams.values():
            preflight_model(model, team, self.core.settings)
        return SweepSpec(run_ids=ids, methods=(), repeats=repeats, upgrade_model=model)

    def sweep(
        self,
        where: str = "status = 'failed'",
        *,
        methods: Sequence[str] = ("value_curve",),
        judge: str | None = None,
        repeats: int = 3,
        curve_repeats: int = 6,
        concurrency: int = 16,
        on_run: Callable[[RunDebug], None] | None = None,
        on_fork: Callable[[Outcome | None], None] | None = None,
    ) -> SweepResult:
        """The pipeline over every root run matching the SQL filter `where` (over `runs`),
        as a resumable sweep (see `resume_sweep`)."""
        from branchpoint.model import SweepSpec

        spec = SweepSpec(
            where=where,
            methods=_methods(methods),
            repeats=repeats,
            curve_repeats=curve_repeats,
            judge_model=judge,
        )
        return self.execute_sweep(spec, concurrency=concurrency, on_run=on_run, on_fork=on_fork)

    def resume_sweep(
        self,
        sweep_id: str,
        *,
        concurrency: int = 16,
        on_run: Callable[[RunDebug], None] | None = None,
        on_fork: Callable[[Outcome | None], None] | None = None,
    ) -> SweepResult:
        """Finish a sweep: its stored spec plans the same forks; stored outcomes are kept."""
        from branchpoint.interventions.sweep import load_spec

        spec = load_spec(self.core.store, sweep_id)
        return self.execute_sweep(
            spec, sweep_id=sweep_id, concurrency=concurrency, on_run=on_run, on_fork=on_fork
        )

    def execute_sweep(
        self,
        spec: SweepSpec,
        *,
        sweep_id: str | None = None,
        concurrency: int = 16,
        on_run: Callable[[RunDebug], None] | None = None,
        on_fork: Callable[[Outcome | None], None] | None = None,
        on_skip: Callable[[str, str], None] | None = None,
    ) -> SweepResult:
        """Run the sweep `sweep_id` of `spec` (recorded first when no id is given). A run that
        cannot be replayed (an imported log) is skipped and `on_skip(run_id, reason)` told."""
        from branchpoint.interventions.sweep import execute_sweep

        judge = self.judge(spec.judge_model)
        sweep_id = sweep_id or self.create_sweep(spec)
        reports = execute_sweep(
            self.core, sweep_id, spec, judge, concurrency, on_run, on_fork, on_skip
        )
        return SweepResult(sweep_id, tuple(reports))

    def judge(self, model: str | None) -> Judge | None:
        """The LLM judge on `model` (made once per session; its calls are recorded), or None
        without a model. A missing model file or a down endpoint fails here."""
        if model is None:
            return None
        if model not in self._judges:
            from branchpoint.interventions.pipeline import judge_for

            self._judges[model] = judge_for(self.core, model)
        return self._judges[model]

    def create_sweep(self, spec: SweepSpec) -> str:
        """Record a sweep of `spec` (nothing runs yet) and return its id."""
        from branchpoint.interventions.sweep import create_sweep

        return create_sweep(self.core.store, spec, self.core.ids, self.core.clock)

    # reading

    def get_run(self, run: RunRef) -> Run:
        """A run as stored (status, answer, lineage, tokens)."""
        from branchpoint.orchestrator.runs import load_run

        self.core.flush()
        return load_run(self.core.store, _run_id(run))

    def steps(self, run: RunRef) -> list[Step]:
        """Every step of a run in order (a fork's shared prefix included)."""
        from branchpoint.orchestrator.runs import load_steps

        return load_steps(self.core.store, self.get_run(run))

    @overload
    def sql(
        self, query: str, params: Sequence[Any] | None = None, *, format: Literal["rows"] = "rows"
    ) -> list[dict[str, Any]]: ...

    @overload
    def sql(
        self, query: str, params: Sequence[Any] | None = None, *, format: Literal["arrow"]
    ) -> pa.Table: ...

    def sql(
        self, query: str, params: Sequence[Any] | None = None, *, format: RowsFormat = "rows"
    ) -> list[dict[str, Any]] | pa.Table:
        """Read-only SQL over the traces (views `runs`, `steps`, `llm_calls`, `tool_calls`,
        `forks`, and the pipeline's tables): rows as dicts, or an Arrow table."""
        self.core.flush()
        columns, rows = self.core.read_only_query(query, list(params) if params else None)
        return _shape(columns, rows, format)


def plan_runs(
    tasks: TaskSource = "builtin",
    *,
    team: str | TeamSpec = "math",
    model: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    fault_rate: float = 0.5,
    settings: Settings | None = None,
) -> RunPlan:
    """The runs `Session.run` would start, checked before anything starts: the team resolves
    (a built-in name, `pkg.module:attr`, a team file, `autogen:PATH.json`, or a TeamSpec), the
    tasks load, the model is usable (a missing model file or a down endpoint fails here). No
    model: the team's own default, else `local`."""
    from branchpoint.agents.team_registry import resolve_team
    from branchpoint.orchestrator.runner import plan_faults, preflight_model, sim_tasks
    from branchpoint.orchestrator.session import is_sim

    team_spec = resolve_team(team) if isinstance(team, str) else team
    model = model or team_spec.default_model or "local"
    sim = is_sim(model)
    task_list = _load_tasks(tasks, None if sim else limit, team_spec)
    preflight_model(model, team_spec, settings or Settings())
    left_out = 0
    faults: dict[str, tuple[Fault, ...]] = {}
    if sim:
        task_list, left_out = sim_tasks(task_list)
        task_list = task_list[:limit]
        faults = plan_faults(task_list, fault_rate, seed)
    return RunPlan(team_spec, model, seed, tuple(task_list), faults, left_out, model_checked=True)


def session(
    db: str | Path | None = None,
    *,
    model: str | None = None,
    team: str | TeamSpec = "math",
    ray: bool = False,
    address: str | None = None,
    checkpointer: str | None = None,
    ids: IdSource | None = None,
    clock: Clock | None = None,
) -> Session:
    """Open a `Session` (see there); use it as `with bp.session(...) as s:`."""
    return Session(
        db,
        model=model,
        team=team,
        ray=ray,
        address=address,
        checkpointer=checkpointer,
        ids=ids,
        clock=clock,
    )


def current_session() -> Session:
    """The session of the innermost `with bp.session(...)` block."""
    found = _CURRENT.get()
    if found is None:
        raise BranchpointError("no open session: use `with bp.session(db=...) as s:` first")
    return found


def _on_current(method: Callable[Concatenate[Session, P], R]) -> Callable[P, R]:
    """A module-level function that calls `method` on the current session."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(current_session(), *args, **kwargs)

    return call


run = _on_current(Session.run)
fork = _on_current(Session.fork)
replay = _on_current(Session.replay)
debug = _on_current(Session.debug)
sweep = _on_current(Session.sweep)
upgrade = _on_current(Session.upgrade)


@overload
def sql(
    query: str,
    params: Sequence[Any] | None = None,
    *,
    db: str | Path | None = None,
    format: Literal["rows"] = "rows",
) -> list[dict[str, Any]]: ...


@overload
def sql(
    query: str,
    params: Sequence[Any] | None = None,
    *,
    db: str | Path | None = None,
    format: Literal["arrow"],
) -> pa.Table: ...


def sql(
    query: str,
    params: Sequence[Any] | None = None,
    *,
    db: str | Path | None = None,
    format: RowsFormat = "rows",
) -> list[dict[str, Any]] | pa.Table:
    """Read-only SQL: on the current session's database, or on `db` (default
    `$BRANCHPOINT_DB`) without a session, also while another process is writing it."""
    current = _CURRENT.get()
    if current is not None and db is None:
        return current.sql(query, params, format=format)
    from branchpoint.telemetry.query import readonly_query

    path = Settings().with_overrides(db_path=Path(db) if db is not None else None).db_path
    columns, rows = readonly_query(path, query, list(params) if params else None)
    return _shape(columns, rows, format)


def _shape(
    columns: list[str], rows: list[tuple[Any, ...]], format: RowsFormat
) -> list[dict[str, Any]] | pa.Table:
    dicts = [dict(zip(columns, row, strict=True)) for row in rows]
    if format == "rows":
        return dicts
    import pyarrow as pa

    return pa.Table.from_pylist(dicts) if dicts else pa.table({c: [] for c in columns})


def _run_id(run: RunRef) -> str:
    return run.run_id if isinstance(run, Run) else run


def _run_ids(runs: RunRef | Sequence[RunRef]) -> tuple[str, ...]:
    """The ids of one run or of several."""
    return tuple(_run_id(r) for r in ([runs] if isinstance(runs, str | Run) else runs))


def _intervention(value: Intervention | Mapping[str, Any] | str) -> Intervention:
    """The intervention itself, or parsed from its JSON text or dict (the CLI's checks)."""
    if not isinstance(value, str | Mapping):
        return value
    from branchpoint.orchestrator.fork import parse_intervention

    return parse_intervention(value if isinstance(value, str) else json.dumps(dict(value)))


def _methods(methods: Sequence[str]) -> tuple[str, ...]:
    from branchpoint.interventions.attribution import method_named

    names = tuple(methods)
    if not names:
        raise BranchpointError("give at least one method")
    for name in names:
        method_named(name)
    return names


def builtin_tasks_for(team: TeamSpec) -> list[Task]:
    """The built-in tasks a team can work on: the code tasks (a function to write, with tests)
    for a team scored by running code, the question-and-answer tasks for any other."""
    from branchpoint.agents.code_team import score_code
    from branchpoint.tasks import builtin_tasks

    code = team.score is score_code
    return [t for t in builtin_tasks() if bool(t.entry_point) == code]


def _load_tasks(tasks: TaskSource, limit: int | None, team: TeamSpec) -> list[Task]:
    from branchpoint.tasks import BUILTIN, load_tasks

    if tasks == BUILTIN:
        return builtin_tasks_for(team)[:limit]
    if isinstance(tasks, str | Path):
        return load_tasks(tasks, limit)
    found = [tasks] if isinstance(tasks, Task) else list(tasks)
    return found[:limit] if limit is not None else found


__all__ = [
    "RunPlan",
    "Session",
    "SweepResult",
    "current_session",
    "debug",
    "fork",
    "instruct",
    "plan_runs",
    "replace_message",
    "replace_plan",
    "replay",
    "resample",
    "run",
    "session",
    "sql",
    "swap_model",
    "sweep",
    "upgrade",
]
