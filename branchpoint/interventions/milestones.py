"""Milestones of a task and how far a run got: deterministic predicates from worked solutions,
LLM-extracted milestones for tasks without one, and the progress delta a fork gained.

This module also holds the one numeric normaliser (`number_tokens`) that milestone matching and
answer-leak detection share, so "1,200", "1200" and "1200.0" are the same number everywhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from branchpoint.interventions.judge import Judge, ask_json, render_log, render_prompt
from branchpoint.model import Frozen, Step, Task
from branchpoint.tasks import visible_examples

log = logging.getLogger(__name__)
MAX_JUDGED_MILESTONES = 5
Status = Literal["achieved", "partial", "missed"]
STATUSES: tuple[Status, ...] = ("achieved", "partial", "missed")

# A whole number token: thousands groups ("1,200"), plain digits, decimals. The look-arounds keep
# "1200" from matching inside "12000" or "1.1200"; signs are ignored on purpose (a leaked "-5"
# still reveals "5").
_NUMBER = re.compile(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])|(?<![\d.])\.\d+")
_GSM8K_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_SOLUTION_EQUATION = re.compile(r"=\s*\$?\s*([-\d.,]+)")


class Milestone(Frozen):
    """A checkpoint on the way to the answer: what it is, the action that reaches it, its result."""

    title: str
    action: str
    result: str


class MilestoneJudgement(Frozen):
    """The judge's status for one milestone, with the evidence it quoted."""

    status: Status
    evidence: str = ""


def normalise_number(text: str) -> str | None:
    """Canonical form of a number ("1,200.0" -> "1200", "0.50" -> "0.5"); None if not a number."""
    cleaned = text.strip().replace(",", "").lstrip("$")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    value = abs(value)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def number_tokens(text: str) -> set[str]:
    """Every whole number token in `text`, normalised."""
    found = (normalise_number(m.group(0)) for m in _NUMBER.finditer(text))
    return {n for n in found if n is not None}


def predicate_milestones(task: Task) -> list[Milestone]:
    """Intermediate values of the task's worked solution, in order, as milestones (a code task's
    are its visible examples).

    GSM8K solutions carry `<<a*b=c>>` annotations; GSM-Plus solutions without them give one value
    per line from `... = N`. Values already stated in the question are skipped (restating the
    question is no progress), and each value counts once.
    """
    if task.entry_point:  # a code task: its visible examples, counted by running the program
        return [
            Milestone(title=f"example {i}", action=e.call, result=e.expected)
            for i, e in enumerate(visible_examples(task), 1)
        ]
    if not task.solution:
        return []
    pairs = [(m.group(1).strip(), m.group(2)) for m in _GSM8K_ANNOTATION.finditer(task.solution)]
    if not pairs:
        pairs = [
            (line.strip(), matches[-1].group(1))
            for line in task.solution.splitlines()
            if not line.startswith("####") and (matches := list(_SOLUTION_EQUATION.finditer(line)))
        ]
    given = number_tokens(task.question)
    milestones: list[Milestone] = []
    seen: set[str] = set()
    for action, raw in pairs:
        value = normalise_number(raw.rstrip(".,"))
        if value is None or value in given or value in seen:
            continue
        seen.add(value)
        milestones.append(
            Milestone(title=f"value {value}", action=action or f"compute {value}", result=value)
        )
    return milestones


def achieved(
    milestones: Sequence[Milestone], steps: Sequence[Step], task: Task | None = None
) -> int:
    """How many milestones' result values appear as number tokens in any step's content; for a
    code task, how many of its visible examples the run's last program passes."""
    if task is not None and task.entry_point and milestones:
        from branchpoint.agents.code_team import examples_passed

        return examples_passed(task, steps)
    seen: set[str] = set()
    for step in steps:
        seen |= number_tokens(step.content)
    return sum(1 for m in milestones if normalise_number(m.result) in seen)


def progress_delta(fork_achieved: float, original_achieved: float, k: int) -> float:
    """(achieved(fork) - achieved(original)) / K, where `k` is the number of milestones K."""
    return (fork_achieved - original_achieved) / k if k > 0 else 0.0


def judge_milestones(task: Task, judge: Judge) -> list[Milestone]:
    """Up to five LLM-extracted milestones for a task without a worked solution ([] on failure)."""

    def parse(reply: dict[str, Any]) -> list[Milestone]:
        items = reply["milestones"]
        if not isinstance(items, list) or not items:
            raise ValueError("milestones must be a non-empty list")
        parsed = []
        for item in items[:MAX_JUDGED_MILESTONES]:
            if not isinstance(item, dict):
                raise TypeError("each milestone must be an object with title, action, result")
            fields = {k: str(item.get(k, "")).strip() for k in ("title", "action", "result")}
            if not fields["title"]:
                raise ValueError("each milestone needs a title")
            parsed.append(Milestone(**fields))
        return parsed

    system, user = render_prompt("milestones", question=task.question)
    failures: list[str] = []
    result = ask_json(judge, system, user, parse, failures=failures)
    if result is None:
        log.info("milestone extraction for %s failed: %s", task.task_id, failures)
        return []
    return result


def judge_achievement_detailed(
    milestones: Sequence[Milestone], steps: Sequence[Step], judge: Judge, question: str = ""
) -> list[MilestoneJudgement]:
    """The judge's status and evidence per milestone; "missed" where it gave none."""
    if not milestones:
        return []

    def parse(reply: dict[str, Any]) -> dict[int, MilestoneJudgement]:
        items = reply["milestones"]
        if not isinstance(items, list):
            raise TypeError("milestones must be a list")
        out: dict[int, MilestoneJudgement] = {}
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise TypeError("each entry must be an object with index, status, evidence")
            index = item.get("index", position)
            status = str(item.get("status", "")).strip().lower()
            if not isinstance(index, int) or not 0 <= index < len(milestones):
                raise ValueError(f"index must be between 0 and {len(milestones) - 1}")
            if status not in STATUSES:
                raise ValueError("status must be achieved, partial or missed")
            out[index] = MilestoneJudgement(
                status=status,  # type: ignore[arg-type]
                evidence=str(item.get("evidence", "")),
            )
        return out

    listing = "\n".join(
        f"{i}. {m.title}: {m.action} -> {m.result}" for i, m in enumerate(milestones)
    )
    system, user = render_prompt(
        "milestone_achievement", question=question, milestones=listing, log=render_log(steps)
    )
    failures: list[str] = []
    judged = ask_json(judge, system, user, parse, failures=failures) or {}
    if not judged:
        log.info("milestone achievement judging failed: %s", failures)
    missing = MilestoneJudgement(status="missed", evidence="not judged")
    return [judged.get(i, missing) for i in range(len(milestones))]


def judge_achievement(
    milestones: Sequence[Milestone], steps: Sequence[Step], judge: Judge, question: str = ""
) -> list[Status]:
    """achieved / partial / missed per milestone, as judged by the LLM."""
    return [j.status for j in judge_achievement_detailed(milestones, steps, judge, question)]
