"""In-process, a turn does not wait for its LLM record to be stored (as on a Ray host); the
session's flush stores every one, and a record that could not be stored fails the flush."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from branchpoint.agents.teams import MATH
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings
from branchpoint.tasks import Task
from branchpoint.telemetry.store import TraceStorageError

TASK = Task(
    task_id="t1",
    question="What is 2+3, then times 4?",
    answer="20",
    solution="2+3=<<2+3=5>>5\n5*4=<<5*4=20>>20\n#### 20",
)


def test_every_call_of_a_run_has_its_record_after_the_flush(tmp_path: Path) -> None:
    with Session(Settings(db_path=tmp_path / "t.duckdb"), ray=False) as session:
        run = run_task(session, MATH, TASK, "sim")
        session.flush()
        calls = session.store.query(
            "SELECT request_hash FROM llm_calls WHERE run_id = ? ORDER BY step", [run.run_id]
        )
        stored = session.store.query(
            "SELECT request_hash FROM llm_records WHERE request_hash IN "
            "(SELECT request_hash FROM llm_calls WHERE run_id = ?)",
            [run.run_id],
        )
    assert run.status == "succeeded" and len(calls) == run.n_steps
    assert {r["request_hash"] for r in stored} == {c["request_hash"] for c in calls}


def test_a_record_that_cannot_be_stored_fails_the_flush(tmp_path: Path) -> None:
    with Session(Settings(db_path=tmp_path / "t.duckdb"), ray=False) as session:

        def refuse(records: Any) -> None:
            raise TraceStorageError("could not store LLM records (disk full)")

        session.store.put_llm_records = refuse  # type: ignore[method-assign]
        run = run_task(session, MATH, TASK, "sim")  # its turns did not wait for their records
        assert run.status == "succeeded"
        with pytest.raises(TraceStorageError, match="disk full"):
            session.flush()
