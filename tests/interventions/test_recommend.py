"""Rule-based recommendations and the mechanical answer-leak check."""

from __future__ import annotations

import pytest
from dover_samples import math_run

from branchpoint.errors import StepOutOfRangeError
from branchpoint.interventions.recommend import leaks_answer, recommend
from branchpoint.model import (
    Hypothesis,
    Instruct,
    ReplaceMessage,
    ReplacePlan,
    Run,
    Step,
    StepKind,
    SwapModel,
)


@pytest.mark.parametrize(
    ("text", "answer", "leak"),
    [
        ("the total is 1,200 dollars", "1200", True),
        ("the total is 1200.0", "1,200", True),
        ("the total is $1200.", "1200.00", True),
        ("the total is 12000", "1200", False),
        ("the total is 11200", "1200", False),
        ("ratio 0.5 then", "0.50", True),
        ("version 1.1200", "1200", False),
        ("answer: -18", "18", True),
        ("steps 3,4,5", "345", False),
        ("the city is holabird!", "Holabird", True),
        ("the city is Holabirds", "Holabird", False),
        ("nothing here", None, False),
    ],
)
def test_leak_detection(text: str, answer: str | None, leak: bool) -> None:
    assert leaks_answer(ReplaceMessage(step=0, content=text), answer) is leak


def test_answer_in_question_is_not_a_leak_and_plan_fields_are_checked() -> None:
    edit = ReplacePlan(step=0, facts="we know 18 eggs", plan="1. add")
    assert leaks_answer(edit, "18")
    assert not leaks_answer(edit, "18", question="There are 18 eggs.")
    assert not leaks_answer(SwapModel(step=0, model="qwen-18b"), "18")


def _turns(*turns: tuple[str, StepKind, str]) -> list[Step]:
    """Steps of run "m" from (agent, kind, content), indexed in order."""
    return [
        Step(run_id="m", index=i, agent=agent, kind=kind, content=content)
        for i, (agent, kind, content) in enumerate(turns)
    ]


def _hyp(step: int, reason: str = "the subtraction is wrong") -> Hypothesis:
    return Hypothesis(run_id="math-ducks", agent="x", step=step, reason=reason, method="test")


def test_plan_of_a_model_agent_is_replanned_under_an_instruction() -> None:
    run, steps = math_run()
    edit = recommend(_hyp(0), run, steps.copy())
    assert isinstance(edit, Instruct) and edit.step == 0 and "re-plan" in edit.instruction.lower()
    assert steps[0].content not in edit.instruction  # the faulty plan is not copied into the fix


def test_plan_of_a_foreign_log_gets_a_replace_plan_without_the_old_items() -> None:
    run, steps = math_run()
    foreign = run.model_copy(update={"team": "whowhen-ag2"})
    edit = recommend(_hyp(0), foreign, steps)
    assert isinstance(edit, ReplacePlan) and edit.step == 0
    assert (
        edit.plan is not None
        and steps[0].content not in edit.plan
        and "re-derive" in edit.plan.lower()
    )


def test_agent_step_gets_an_instruction_naming_the_step() -> None:
    run, steps = math_run()
    edit = recommend(_hyp(1), run, steps)
    assert isinstance(edit, Instruct) and edit.step == 1
    assert edit.instruction.startswith("Re-check step 1: the subtraction is wrong.")


def test_orchestrator_instruction_is_corrected_and_tool_result_goes_to_the_caller() -> None:
    run, _ = math_run()
    steps = _turns(
        ("Orchestrator", "instruction", "Coder: sum it"),
        ("Coder", "message", "print(1+2)"),
        ("ComputerTerminal", "tool_result", "3"),
    )
    first = recommend(_hyp(0, "asks for the wrong sum"), run, steps)
    assert isinstance(first, Instruct) and first.instruction.startswith("Coder: sum it")
    tool = recommend(_hyp(2), run, steps)
    assert isinstance(tool, Instruct) and tool.step == 1


def test_leaking_reason_falls_back_to_a_generic_edit_without_numbers() -> None:
    run, steps = math_run()
    edit = recommend(_hyp(1, "the answer should be 18, not 16"), run, steps)
    assert isinstance(edit, Instruct)
    assert not leaks_answer(edit, "18", run.task.question)
    assert not any(ch.isdigit() for ch in edit.instruction)


def test_step_number_equal_to_the_answer_does_not_leak() -> None:
    run, steps = math_run()
    three = run.model_copy(update={"task": run.task.model_copy(update={"answer": "4"})})
    edit = recommend(_hyp(4, "wrong"), three, steps)
    assert not leaks_answer(edit, "4", three.task.question)


def test_text_answer_that_is_a_word_of_the_generic_text_gets_no_text() -> None:
    run, steps = math_run()
    odd: Run = run.model_copy(update={"task": run.task.model_copy(update={"answer": "mistake"})})
    edit = recommend(_hyp(1, "a mistake"), odd, steps)
    assert edit.kind == "resample"


def test_unknown_step_is_a_user_error() -> None:
    run, steps = math_run()
    with pytest.raises(StepOutOfRangeError):
        recommend(_hyp(42), run, steps)


def test_a_blamed_tool_result_is_tested_with_swap_model_at_the_program_writers_turn() -> None:
    from branchpoint.agents.pot_team import POT
    from branchpoint.interventions.pipeline import fix_arms

    run, _ = math_run()
    steps = _turns(
        ("Solver", "message", "```python\nprint(1)\n```"),
        ("Runner", "tool_result", "printed 1"),
        ("Verifier", "message", "ACCEPT"),
    )
    fix = recommend(_hyp(1, "printed the wrong total"), run, steps)  # DoVer blamed the Runner
    assert isinstance(fix, Instruct) and fix.step == 0
    assert fix_arms(fix, steps, POT, "local:coder-1.5b") == [
        fix,
        SwapModel(step=0, model="local:coder-1.5b", agent="Solver"),
    ]
    assert fix_arms(fix, steps, POT, None) == [fix]
