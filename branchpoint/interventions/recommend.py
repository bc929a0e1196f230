"""Recommend one minimal intervention per hypothesis, and check mechanically that no edit leaks
the ground-truth answer to the team.

The edit's type follows the blamed step's kind: a plan step gets a `ReplacePlan`, an orchestrator
instruction a corrected `Instruct`, any other agent turn an `Instruct` to that agent. With a judge
the text is the judge's minimal edit; without one, or when the judge's edit is unusable or leaks,
it is a rule-based text; when even that would leak, a generic text with no numbers at all.
The edit goes to the blamed step, except that a tool result is fixed at the turn that called
the tool (a terminal cannot follow instructions).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from branchpoint.agents.teams import TEAMS
from branchpoint.errors import StepOutOfRangeError
from branchpoint.interventions.judge import Judge, ask_json, render_prompt
from branchpoint.interventions.milestones import normalise_number, number_tokens
from branchpoint.model import (
    Hypothesis,
    Instruct,
    Intervention,
    ReplacePlan,
    Resample,
    Run,
    Step,
    Task,
)

# Intervention fields that are not text shown to the team.
_NON_TEXT_FIELDS = {"kind", "step", "model", "agent", "intervention_id"}
GENERIC_PLAN = (
    "Re-derive the plan from the question. For the item that went wrong, recompute it "
    "carefully from the quantities stated in the question, check each operation, and only "
    "then use its result in later items."
)
GENERIC_REPLAN = (
    "Re-plan from the question: list every calculation the question needs, one numbered item "
    "each, without leaving any out."
)
GENERIC_INSTRUCTION = (
    "Re-check your previous work: recompute each intermediate value from the quantities "
    "stated in the question, verify every operation, and correct any mistake before answering."
)


def leaks_answer(intervention: Intervention, answer: str | None, question: str = "") -> bool:
    """Whether any text field of the edit contains the ground-truth answer.

    Numeric answers match as whole number tokens after normalisation ("1,200" == "1200.0");
    other answers match as a whole phrase, case-insensitively. An answer already in the question
    reveals nothing and is not a leak.
    """
    if answer is None or not answer.strip():
        return False
    texts = [
        v
        for k, v in intervention.model_dump().items()
        if k not in _NON_TEXT_FIELDS and isinstance(v, str)
    ]
    number = normalise_number(answer)
    if number is not None:
        if number in number_tokens(question):
            return False
        return any(number in number_tokens(t) for t in texts)
    phrase = re.compile(rf"(?<!\w){re.escape(' '.join(answer.split()))}(?!\w)", re.IGNORECASE)
    if phrase.search(" ".join(question.split())):
        return False
    return any(phrase.search(" ".join(t.split())) for t in texts)


MIN_CODE_LINE = 15  # shorter lines ("return x", "else:") say nothing about a solution


def leaks_code(intervention: Intervention, task: Task) -> bool:
    """For a code task: whether a text field of the edit quotes a line of the canonical solution
    or of the hidden tests (lines already in the task's prompt reveal nothing)."""
    secret = f"{task.answer or ''}\n{task.test or ''}" if task.test else ""
    shown = {" ".join(x.split()) for x in task.question.splitlines()}
    lines = {" ".join(x.split()) for x in secret.splitlines()}
    lines = {x for x in lines if len(x) >= MIN_CODE_LINE and x not in shown}
    if not lines:
        return False
    texts = [
        " ".join(v.split())
        for k, v in intervention.model_dump().items()
        if k not in _NON_TEXT_FIELDS and isinstance(v, str)
    ]
    return any(line in text for line in lines for text in texts)


def leaks(intervention: Intervention, task: Task) -> bool:
    """Whether the edit gives the task away: its answer, or for code its solution or tests."""
    return leaks_answer(intervention, task.answer, task.question) or leaks_code(intervention, task)


def _target(hypothesis: Hypothesis, steps: Sequence[Step]) -> Step:
    """The step to edit: the blamed one, or for a tool result the turn that called the tool."""
    by_index = {s.index: s for s in steps}
    step = by_index.get(hypothesis.step)
    if step is None:
        raise StepOutOfRangeError(
            f"hypothesis step {hypothesis.step} is not a step of run {hypothesis.run_id}; "
            f"use a step between {min(by_index, default=0)} and {max(by_index, default=0)}"
        )
    if step.kind == "tool_result" and step.index - 1 in by_index:
        return by_index[step.index - 1]
    return step


def rule_based(
    hypothesis: Hypothesis, steps: Sequence[Step], generic: bool = False, team: str | None = None
) -> Intervention:
    """The edit built from the step's kind and the hypothesis' reason, with no LLM.

    `generic` drops the reason and the original text, leaving a fixed text without numbers: the
    fallback that cannot leak an answer. A plan written by an agent of a known team that calls
    a model is re-planned under an instruction (copying the faulty plan into a replacement
    would keep its mistake); other plans are replaced by the generic plan.
    """
    step = _target(hypothesis, steps)
    reason = "" if generic else " ".join(hypothesis.reason.split())
    if step.kind == "plan":
        note = f" What went wrong before: {reason}" if reason else ""
        known = TEAMS.get(team or "")
        if known is not None and step.agent in known.agent_names and known.agent(step.agent).prompt:
            return Instruct(step=step.index, instruction=f"{GENERIC_REPLAN}{note}")
        return ReplacePlan(step=step.index, plan=GENERIC_PLAN + note)
    if step.kind == "instruction" and not generic:
        return Instruct(
            step=step.index,
            instruction=f"{step.content}\n\nBe careful: {reason or 'the last attempt failed'}. "
            "Verify each intermediate result before passing it on.",
        )
    if generic:
        return Instruct(step=step.index, instruction=GENERIC_INSTRUCTION)
    note = f": {reason}" if reason else ""
    return Instruct(
        step=step.index, instruction=f"Re-check step {step.index}{note}. {GENERIC_INSTRUCTION}"
    )


def _judged(
    hypothesis: Hypothesis, run: Run, steps: Sequence[Step], judge: Judge
) -> Intervention | None:
    """The judge's minimal edit of the target step's plan or instruction, refused if it leaks."""
    step = _target(hypothesis, steps)
    field_name = "plan" if step.kind == "plan" else "instruction"

    def parse(reply: dict[str, Any]) -> Intervention:
        text = reply[field_name]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'"{field_name}" must be a non-empty text')
        edit: Intervention = (
            ReplacePlan(step=step.index, plan=text.strip())
            if field_name == "plan"
            else Instruct(step=step.index, instruction=text.strip())
        )
        if leaks(edit, run.task):
            raise ValueError("the edit states the final answer; describe what to check instead")
        return edit

    system, user = render_prompt(
        "recommend",
        field=field_name,
        question=run.task.question,
        step=step.index,
        agent=step.agent,
        kind=step.kind,
        content=step.content[:1500],
        reason=hypothesis.reason or "(not given)",
    )
    return ask_json(judge, system, user, parse, retries=1)


def recommend(
    hypothesis: Hypothesis, run: Run, steps: Sequence[Step], judge: Judge | None = None
) -> Intervention:
    """A minimal edit at the hypothesis' step that never reveals the ground-truth answer.

    An `ldb` hypothesis gets its own fix: a `runtime_trace` at the program's step (the block
    trace with the blamed block marked, the old program withheld).
    """
    if hypothesis.method == "ldb":
        from branchpoint.interventions.ldb import runtime_trace_at

        traced = runtime_trace_at(run, steps, hypothesis.step, hypothesis.reason)
        if traced is not None and not leaks(traced, run.task):
            return traced
    if judge is not None:
        edit = _judged(hypothesis, run, steps, judge)
        if edit is not None:
            return edit
    edit = rule_based(hypothesis, steps, team=run.team)
    if leaks(edit, run.task):
        edit = rule_based(hypothesis, steps, generic=True, team=run.team)
    if leaks(edit, run.task):
        # Only a text answer that is a word of the generic text gets here: send no text at all.
        return Resample(step=edit.step)
    return edit
