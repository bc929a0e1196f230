"""The code team on the real embedded 0.5B model: it solves an easy task and fails one it must."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchpoint.agents.code_team import CODE
from branchpoint.model import Task
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_steps
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

pytestmark = [pytest.mark.local_model, pytest.mark.ray]

EASY = Task(
    task_id="t-add",
    question='def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n',
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-4, 4) == 0\n",
    entry_point="add",
    source="test",
)
# The hidden tests want a number the task never states: no program can pass them.
UNKNOWABLE = Task(
    task_id="t-secret",
    question='def secret() -> int:\n    """Return the secret number.\n    """\n',
    test="def check(candidate):\n    assert candidate() == 7919\n",
    entry_point="secret",
    source="test",
)


def test_the_code_team_solves_an_easy_task_and_fails_an_unknowable_one(
    tmp_path: Path, local_gguf: Path
) -> None:
    settings = Settings(db_path=tmp_path / "code.duckdb", n_hosts=1)
    with Session(settings) as session:
        easy = run_task(session, CODE, EASY, "local", seed=0)
        hard = run_task(session, CODE, UNKNOWABLE, "local", seed=0)
        session.flush()
        easy_steps = load_steps(session.store, easy)
        tools = session.store.query(
            "SELECT tool, ok FROM tool_calls WHERE run_id = ?", [easy.run_id]
        )
    assert easy.status == "succeeded", easy.error
    assert [s.agent for s in easy_steps][:2] == ["Coder", "Tester"]
    # The Coder's reply ends at its code block (the stop sequence), the fence put back.
    assert easy_steps[0].content.rstrip().endswith("```"), easy_steps[0].content
    assert tools and tools[-1]["tool"] == "visible_examples" and tools[-1]["ok"]
    assert hard.status == "failed"
