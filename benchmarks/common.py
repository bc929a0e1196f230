"""Shared helpers of the benchmark scripts: a session on a scratch database, synthetic tasks, timing."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from branchpoint.model import Step, Task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
BENCH_JSON_ENV = "BRANCHPOINT_BENCH_JSON"
console = Console(width=None if sys.stdout.isatty() else 140)


def start_local_ray(attempts: int = 4) -> None:
    """Start this process's local Ray, trying again when its node times out during start-up
    (Ray waits 30 s for the raylet, which a heavily loaded machine can miss)."""
    import ray

    from branchpoint.orchestrator.session import start_ray

    for attempt in range(attempts):
        try:
            start_ray(None)
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise
            console.print(f"Ray start-up timed out (attempt {attempt + 1}); trying again")
            ray.shutdown()
            time.sleep(5)


@contextlib.contextmanager
def scratch_session(db: Path | None = None, **settings: Any) -> Iterator[Session]:
    """A Session on `db`, or on a fresh temporary trace database that is removed afterwards."""
    start_local_ray()
    with contextlib.ExitStack() as stack:
        if db is None:
            db = (
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
                / "traces.duckdb"
            )
        session = stack.enter_context(Session(Settings(db_path=db, **settings)))
        yield session


def chain_task(n: int) -> Task:
    """A synthetic task whose worked solution is n calculator steps: i+1=<<i+1=i+1>>."""
    lines = "\n".join(f"{i}+1=<<{i}+1={i + 1}>>{i + 1}" for i in range(n))
    return Task(
        task_id=f"chain-{n}",
        question=f"Count from 0 to {n}, one step at a time.",
        answer=str(n),
        solution=lines + f"\n#### {n}",
    )


def set_max_steps(session: Session, max_steps: int) -> None:
    """Change the step limit of a live session (Settings is frozen; forks read it at fork time)."""
    object.__setattr__(session.settings, "max_steps", max_steps)


class AppendClock:
    """Wraps the session's message store to time-stamp every step it records.

    `record_step` appends each step's message right after the step's turn finished, so the first
    append after a mark is the moment the first new step exists.
    """

    def __init__(self, session: Session) -> None:
        self.stamps: list[tuple[float, Step]] = []
        store = session.messages
        original = store.append

        def append(parent_id: str | None, step: Step) -> str:
            message_id = original(parent_id, step)
            self.stamps.append((time.perf_counter(), step))
            return message_id

        store.append = append  # type: ignore[method-assign]

    def first_after(self, t0: float) -> float:
        """Seconds from t0 to the first step recorded after it."""
        return next(t for t, _ in self.stamps if t >= t0) - t0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(values)


@dataclass(frozen=True)
class Figure:
    """One measured figure of a benchmark, with its goal when it has one."""

    name: str
    value: float | None
    goal: str = ""
    met: bool | None = None
    note: str = ""


def report_figures(bench: str, figures: list[Figure]) -> None:
    """Print a benchmark's goals, met or missed; with BRANCHPOINT_BENCH_JSON set (as
    `benchmarks.run_all` does), also append every figure to that JSON-lines file."""
    for f in figures:
        if f.goal:
            verdict = "n/a" if f.met is None else "met" if f.met else "MISSED"
            shown = "—" if f.value is None else f"{f.value:.2f}"
            console.print(f"goal: {f.name} = {shown} ({f.goal}: {verdict}) {f.note}".rstrip())
    target = os.environ.get(BENCH_JSON_ENV)
    if target:
        with open(target, "a") as out:
            for f in figures:
                out.write(json.dumps({"bench": bench, **asdict(f)}) + "\n")
