"""A fork against LangGraph's Postgres saver on a real PostgreSQL server started by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.model import Fault, Instruct, Task
from branchpoint.orchestrator.fork import fork_run
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.ray]

TASK = Task(
    task_id="t-bus",
    question="A bus has 40 seats; 25 and then 9 people get on. How many are empty?",
    answer="6",
    solution="25+9=<<25+9=34>>34\n40-34=<<40-34=6>>6\n#### 6",
)


def test_fork_on_the_postgres_checkpointer(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(db_path=tmp_path / "pg.duckdb", checkpointer=postgres_url)
    with Session(settings) as session:
        faulty = run_task(
            session, MATH, TASK, "sim", faults=[Fault(agent="Solver", step=1, kind="wrong_operand")]
        )
        assert faulty.status == "failed"
        forks = fork_run(
            session,
            faulty.run_id,
            Instruct(step=1, instruction="Re-check the operands."),
            repeats=2,
        )
        assert [f.status for f in forks] == ["succeeded", "succeeded"]
        threads = session.checkpointer.list({"configurable": {"thread_id": faulty.run_id}})
        assert (
            len(list(threads)) > faulty.n_steps
        )  # the branches live in Postgres, beside the original
    assert not settings.checkpoint_path.exists()  # nothing went to the SQLite default
