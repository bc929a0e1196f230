"""How a run is scored: named scorers a team file can choose, and the default rule."""

from __future__ import annotations

from collections.abc import Callable

from branchpoint.agents.sandbox import newest_code_block, run_humaneval
from branchpoint.model import Step, Task
from branchpoint.tasks import is_correct

Scorer = Callable[[Task, str | None, list[Step]], bool]


def numeric(task: Task, final_answer: str | None, steps: list[Step]) -> bool:
    """The final answer is the task's number."""
    return is_correct(final_answer, task)


def exact(task: Task, final_answer: str | None, steps: list[Step]) -> bool:
    """The final answer is the task's answer, text for text (surrounding space ignored)."""
    return (
        final_answer is not None
        and task.answer is not None
        and (final_answer.strip() == task.answer.strip())
    )


def humaneval(task: Task, final_answer: str | None, steps: list[Step]) -> bool:
    """The newest code block of the run passes the task's HumanEval tests."""
    if not (task.test and task.entry_point):
        return False
    code = newest_code_block(steps)
    return code is not None and run_humaneval(code, task.test, task.entry_point)


def default(task: Task, final_answer: str | None, steps: list[Step]) -> bool:
    """HumanEval tests when the task has them, else the numeric answer."""
    if task.test and task.entry_point:
        return humaneval(task, final_answer, steps)
    return numeric(task, final_answer, steps)


SCORERS: dict[str, Scorer] = {"numeric": numeric, "exact": exact, "humaneval": humaneval}
