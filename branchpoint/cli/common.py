"""What every command shares: the app, consoles, option types, one-line errors, progress bars,
and the run / sweep / verdict views that run, fork, debug, sweep and demo all show.

Heavy modules (Ray, LangGraph, autogen, DuckDB) are imported inside functions only, so commands
that run no agent start fast.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from branchpoint.errors import BranchpointError
from branchpoint.settings import Settings

if TYPE_CHECKING:
    from branchpoint.model import Run

app = typer.Typer(
    help="The `branchpoint` command: run teams, fork and replay runs, debug failures, query traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DbOpt = Annotated[Path | None, typer.Option("--db", help="Trace database (DuckDB file).")]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster: auto or ray://HOST:10001.")
]
CheckpointerOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpointer", help="Checkpoint saver: sqlite (default), memory, or a postgresql:// URL."
    ),
]
RepeatsOpt = Annotated[int, typer.Option(min=1, help="Replays per intervention (and per control).")]
CurveRepeatsOpt = Annotated[
    int, typer.Option(min=1, help="Resamples per step for the value curve.")
]
ForkConcurrencyOpt = Annotated[int, typer.Option(min=1, max=1024, help="Forks at the same time.")]
InProcessOpt = Annotated[
    bool,
    typer.Option(
        "--in-process",
        help="Agent turns in this process, without Ray (one copy of each embedded model, "
        "shared by every turn).",
    ),
]


def use_ray(in_process: bool, address: str | None) -> bool:
    """Whether a command's session runs its agent turns on Ray (the default)."""
    if in_process and address:
        raise BranchpointError("--in-process runs no Ray: give --in-process or --address, not both")
    return not in_process


def user_errors(fn: F) -> F:
    """Turn our own errors into one red line and the error's exit code; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BranchpointError as exc:
            errors.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            errors.print(
                "[yellow]interrupted[/yellow]; finished work is saved "
                "(`run --resume` and `sweep --resume ID` continue it)"
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings_from(
    db: Path | None = None,
    address: str | None = None,
    checkpointer: str | None = None,
    **extra: Any,
) -> Settings:
    """Settings from the environment with the given flags applied."""
    return Settings().with_overrides(
        db_path=db, ray_address=address, checkpointer=checkpointer, **extra
    )


def existing_db_settings(
    db: Path | None = None, address: str | None = None, checkpointer: str | None = None
) -> Settings:
    """`settings_from` for a command that works on recorded runs: a trace database that does not
    exist is refused before Ray starts or a new empty file is made."""
    from branchpoint.telemetry.query import require_db

    settings = settings_from(db, address, checkpointer)
    require_db(settings.db_path)
    return settings


class TraceReader:
    """Read-only queries as dicts on the trace database at `db_path` (`bp.sql`); a live run's
    sink answers them while it holds the file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a vetted read-only query."""
        from branchpoint.api import sql as read_only_sql

        return read_only_sql(sql, params, db=self.db_path)


class _StatusColumn(ProgressColumn):
    """A task's `status` field; empty for a task added without one."""

    def render(self, task: Task) -> Text:
        return Text.from_markup(str(task.fields.get("status", "")))


class LogProgress(Progress):
    """Progress for output that is not a terminal (a CI log, `nohup`, a pipe), where a live bar
    prints nothing until it ends: one plain line when a task starts, whenever it has moved by a
    twentieth of its total or LOG_EVERY_S has passed since its last line, and when it completes."""

    LOG_EVERY_S = 60.0

    def __init__(self) -> None:
        super().__init__(console=console, disable=True)
        self._logged: dict[TaskID, tuple[float, float]] = {}  # completed, time at the last line

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._print(task_id)
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        done, now = task.completed, task.get_time()
        last_done, last_time = self._logged.get(task_id, (0.0, task.start_time or now))
        # A task without a total (forks as they come) logs by time only.
        step = max(1.0, task.total / 20) if task.total is not None else float("inf")
        finished = task.total is not None and done >= task.total
        if finished and task_id in self._logged and last_done == done:
            return  # its last line is out
        if finished or done - last_done >= step or now - last_time >= self.LOG_EVERY_S:
            self._print(task_id)

    def _print(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        self._logged[task_id] = (task.completed, task.get_time())
        total = f"/{task.total:g}" if task.total is not None else ""
        status = Text.from_markup(str(task.fields.get("status", ""))).plain
        elapsed = int(task.elapsed or 0)
        console.print(
            f"{task.description}: {task.completed:g}{total} {status} "
            f"({elapsed // 60}:{elapsed % 60:02d})",
            highlight=False,
            markup=False,
        )


def progress_bar() -> Progress:
    """The progress bar every long command shows (plain lines when output is not a terminal)."""
    if not console.is_terminal:
        return LogProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _StatusColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def cells(*values: Any) -> list[Text]:
    """Table cells as plain text: a model's answer, an agent's or a team's name is data, never
    rich markup (an answer holding "[/INST]" would end the command with a MarkupError)."""
    from branchpoint.telemetry.commands import plain_text

    return [plain_text(v) for v in values]


def run_summary(runs: list[Run], title: str = "runs") -> None:
    """Print per-run rows (for small sets) and the succeeded/failed/errored totals."""
    if len(runs) <= 30:
        table = Table(title=title)
        for col in ("run_id", "task", "status", "answer", "truth", "steps", "tokens", "seconds"):
            table.add_column(col)
        for r in runs:
            table.add_row(
                *cells(
                    r.run_id,
                    r.task.task_id,
                    r.status,
                    r.final_answer or r.error or "",
                    # A code task's answer is its reference solution: not shown, not the score.
                    "hidden tests" if r.task.entry_point else str(r.task.answer or "")[:12],
                    r.n_steps,
                    r.input_tokens + r.output_tokens,
                    f"{r.seconds:.1f}",
                )
            )
        console.print(table)
    totals = Table(title="summary")
    for col in ("runs", "succeeded", "failed", "errored", "tokens", "seconds"):
        totals.add_column(col, justify="right")
    totals.add_row(
        str(len(runs)),
        *(str(sum(r.status == s for r in runs)) for s in ("succeeded", "failed", "errored")),
        str(sum(r.input_tokens + r.output_tokens for r in runs)),
        f"{sum(r.seconds for r in runs):.1f}",
    )
    console.print(totals)
    for cause, count in error_causes(runs)[:5]:
        console.print(
            f"[red]errored[/red] {count} × {escape(cause)}", highlight=False, soft_wrap=True
        )


def error_causes(runs: list[Run]) -> list[tuple[str, int]]:
    """The causes of errored runs, most frequent first."""
    counts = Counter(r.error or "unknown cause" for r in runs if r.status == "errored")
    return counts.most_common()


def fail_if_all_errored(runs: list[Run]) -> None:
    """Exit 1 when there were runs and every one errored (nothing was measured)."""
    if runs and all(r.status == "errored" for r in runs):
        errors.print(f"[red]error:[/red] all {len(runs)} runs errored; causes above")
        raise typer.Exit(1)


@contextmanager
def run_progress(team: str, model: str, total: int) -> Iterator[Callable[[Run], None]]:
    """A progress bar that counts succeeded / failed / errored runs; yields the `on_done` that
    moves it."""
    counts = {"succeeded": 0, "failed": 0, "errored": 0}
    with progress_bar() as bar:
        job = bar.add_task(f"{team} × {model}", total=total, status="")

        def done(r: Run) -> None:
            counts[r.status] = counts.get(r.status, 0) + 1
            bar.update(job, advance=1, status=" ".join(f"{k}={v}" for k, v in counts.items()))

        yield done


def run_with_progress(
    session: Any, team: Any, tasks: list[Any], model: str, **options: Any
) -> list[Run]:
    """`run_tasks` behind a progress bar that counts succeeded / failed / errored runs."""
    from branchpoint.orchestrator.runner import run_tasks

    with run_progress(team.name, model, len(tasks)) as done:
        return run_tasks(session, team, tasks, model, on_done=done, **options)


# Written out (the CLI's help imports no pipeline code); a test checks it against the registry.
METHOD_NAMES = "value_curve, ground_truth, all_at_once, step_by_step, binary_search, dover, ldb"
MethodsOpt = Annotated[str, typer.Option(help=f"Comma-separated: {METHOD_NAMES}.")]
JudgeOpt = Annotated[
    str | None,
    typer.Option(
        help="Model for LLM judges: local, local:PATH.gguf, openai:NAME@URL, or none "
        "(methods that need no judge: value_curve, ground_truth)."
    ),
]


def make_judge(session: Any, judge: str | None) -> Any:
    """An LLM judge whose calls are recorded (replayable) and traced (in `llm_calls`); None for
    `none`. Validate the spec with `judge_model` before writing anything."""
    from branchpoint.interventions.pipeline import judge_for

    return judge_for(session, judge)


def parse_methods(methods: str) -> tuple[str, ...]:
    """Validated method names from a comma-separated flag."""
    from branchpoint.interventions.attribution import registered_methods

    choices = tuple(registered_methods())
    names = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = [m for m in names if m not in choices]
    if unknown or not names:
        raise BranchpointError(f"unknown method(s) {unknown}; choose from {', '.join(choices)}")
    return names


def failure_label(failure: Any) -> str:
    """Why a method gave no verdict (a `PipelineFailure`), in the words a user acts on."""
    if failure.kind != "no_hypothesis":
        return str(failure.kind)
    if "needs a judge" in failure.message:
        return "skipped: needs --judge MODEL"
    if "flat" in failure.message:
        return "no hypothesis (V(k) flat: no resample recovers)"
    return "no hypothesis"


def fork_label(outcome: Any) -> str:
    """How a user reads a finished fork: the task now succeeds, still fails, or the fork did
    not carry out its intervention (it errored, or the agent ignored the edit)."""
    if outcome.success:
        return "succeeded"
    return "still failing" if outcome.fulfilled else "not carried out"


def verdict_table(reports: list[Any]) -> None:
    """Print one row per tested hypothesis."""
    table = Table(title="verdicts")
    for col in (
        "run_id",
        "method",
        "agent",
        "step",
        "intervention",
        "forks ok",
        "wilson 95%",
        "fulfilled",
        "progress",
        "control ok",
        "verdict",
    ):
        table.add_column(col)
    for report in reports:
        for t in report.tests:
            v = t.verdict
            table.add_row(
                *cells(
                    report.run.run_id,
                    t.hypothesis.method,
                    t.hypothesis.agent,
                    t.hypothesis.step,
                    t.intervention.kind,
                    f"{v.successes}/{v.n}",
                    f"[{v.wilson_low:.2f}, {v.wilson_high:.2f}]",
                    f"{v.fulfilled}/{v.n}",
                    f"{v.mean_progress:+.2f}",
                    f"{v.control_successes}/{v.control_n}",
                    v.label,
                )
            )
        for failure in report.failures:
            table.add_row(
                *cells(report.run.run_id, failure.method, *[""] * 8, failure_label(failure))
            )
    console.print(table)
