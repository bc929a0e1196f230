"""The `ldb` method and the `runtime_trace` intervention end to end on a failing HumanEval/1 run
of the code team: the Coder's program is a recorded output of the 0.5B model, the Tester's
message what the Tester makes of it; the judge's reply is scripted (see the fixture's note)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from branchpoint.agents.code_team import CODE
from branchpoint.interventions.ldb import ldb_hypothesis, program_steps
from branchpoint.interventions.recommend import leaks, leaks_answer, leaks_code, recommend
from branchpoint.model import Instruct, Run, RuntimeTrace, Step
from branchpoint.orchestrator.fork import check_fits

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ldb_code_run.json"


class ReplayJudge:
    """Answers with recorded replies, in order."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def complete(self, system: str, user: str) -> str:
        self.prompts.append(user)
        return self.replies.pop(0)


@pytest.fixture(scope="module")
def recorded() -> tuple[Run, list[Step], list[str]]:
    data = json.loads(FIXTURE.read_text())
    run = Run.model_validate(data["run"])
    steps = [Step.model_validate(s) for s in data["steps"]]
    return run, steps, data["judge_replies"]


def test_the_recorded_run_failed_with_a_program(recorded) -> None:
    run, steps, _ = recorded
    assert run.team == "code" and run.status == "failed"
    assert program_steps(steps) and steps[1].content.startswith("FAILED")


def test_ldb_names_the_first_wrong_block(recorded) -> None:
    run, steps, replies = recorded
    judge = ReplayJudge(replies)
    result = ldb_hypothesis(run, steps, judge)
    assert result.failures == []
    (hyp,) = result.hypotheses
    first_step, _ = program_steps(steps)[0]
    assert (hyp.method, hyp.agent, hyp.step) == ("ldb", "Coder", first_step.index)
    assert hyp.reason.startswith("Block ")
    block = int(hyp.reason.split()[1])
    assert block in {v.block for v in result.traced.trace.visits}
    # The judge saw the task, the failing example and the values after each block.
    assert "Runtime trace" in judge.prompts[0] and "values after:" in judge.prompts[0]


def test_runtime_trace_withholds_the_old_program(recorded) -> None:
    run, steps, replies = recorded
    (hyp,) = ldb_hypothesis(run, steps, ReplayJudge(replies)).hypotheses
    iv = recommend(hyp, run, steps)
    assert isinstance(iv, RuntimeTrace) and iv.step == hyp.step
    check_fits(iv, steps, CODE)
    assert not leaks_answer(iv, run.task.answer, run.task.question)
    assert "values after:" in iv.trace and "WRONG" in iv.trace
    _, program = program_steps(steps)[0]
    # Statements, not `name = value` lines (a value shown after a block can read the same).
    keywords = ("for ", "if ", "elif ", "return ", ".append(", "+=", "def ")
    code_lines = [ln.strip() for ln in program.splitlines() if any(k in ln for k in keywords)]
    shown = [ln for ln in code_lines if ln in iv.trace and ln not in run.task.question]
    assert shown == [], f"old code shown to the agent: {shown}"


def test_a_block_of_comments_alone_is_not_a_program_to_trace(recorded) -> None:
    """A real 0.5B Solver reply (GSM-Plus 4) ended in a code block of comments only; wrapped for
    the tracer it read as a SyntaxError of branchpoint's making. It is no program: `ldb` says so
    and uses a later real program if there is one."""
    run, steps, _ = recorded
    comments = steps[0].model_copy(
        update={"content": "Let's implement this:\n```python\n# the total is 2x + 3y\n\n```"}
    )
    result = ldb_hypothesis(run, [comments], ReplayJudge([]))
    assert result.failures == ["no program in the run to trace"]
    real_later = steps[0].model_copy(update={"index": 2})
    assert [s.index for s, _ in program_steps([comments, real_later])] == [2]


def test_a_program_that_ran_one_block_is_blamed_without_asking_the_judge(recorded) -> None:
    """With one block run there is nothing to localise: in session 12 the 1.5B judge, asked
    anyway, failed three times to name block 0 on 3 of 13 GSM-Plus failures."""
    run, steps, _ = recorded
    straight = steps[0].model_copy(
        update={
            "content": "```python\ndef separate_paren_groups(paren_string):\n"
            "    groups = paren_string.split()\n    return groups\n```"
        }
    )
    judge = ReplayJudge([])  # any call would fail: there are no replies
    result = ldb_hypothesis(run, [straight, *steps[1:]], judge)
    assert judge.prompts == [] and result.failures == []
    (hyp,) = result.hypotheses
    assert (hyp.agent, hyp.step) == (straight.agent, straight.index)
    assert hyp.reason.startswith("Block ") and "gave" in hyp.reason  # the failing call's result
    (block,) = {v.block for v in result.traced.trace.visits}
    assert result.verdicts[block].startswith("WRONG")


def test_a_program_that_does_not_parse_is_blamed_on_its_step_without_the_judge(recorded) -> None:
    """No block of it can run, so none can be blamed, but the step that wrote it is wrong: in
    session 13 the 0.5B Coder's first HumanEval/105 program left a `[` open, as did 2 of 30
    `math-pot` Solvers' programs, and `ldb` gave those runs no hypothesis."""
    run, steps, _ = recorded
    broken = steps[0].model_copy(
        update={
            "content": "```python\ndef separate_paren_groups(paren_string):\n"
            "    return [paren_string.split(\n```"
        }
    )
    judge = ReplayJudge([])
    result = ldb_hypothesis(run, [broken, *steps[1:]], judge)
    assert judge.prompts == [] and result.failures == []
    (hyp,) = result.hypotheses
    assert (hyp.method, hyp.agent, hyp.step) == ("ldb", broken.agent, broken.index)
    assert "does not parse" in hyp.reason and "SyntaxError" in hyp.reason
    # Its fix is not a runtime trace (there is none) but an edit at the same step.
    iv = recommend(hyp, run, [broken, *steps[1:]])
    assert iv.step == broken.index and not isinstance(iv, RuntimeTrace)


def test_an_unusable_judge_leaves_a_reason_not_a_hypothesis(recorded) -> None:
    run, steps, _ = recorded
    result = ldb_hypothesis(run, steps, ReplayJudge(['{"first_wrong_block": 999}'] * 3))
    assert result.hypotheses == []
    assert "first_wrong_block must be one of the traced blocks" in result.failures[0]


def test_code_edits_may_not_quote_the_solution_or_the_hidden_tests(recorded) -> None:
    run, _, _ = recorded
    solution_line = next(x for x in run.task.answer.splitlines() if len(x.strip()) >= 15)
    test_line = next(x for x in run.task.test.splitlines() if x.strip().startswith("assert"))
    for quoted in (solution_line, test_line):
        edit = Instruct(step=0, instruction=f"Hint:\n{quoted}\nnow write it")
        assert leaks_code(edit, run.task) and leaks(edit, run.task)
    harmless = Instruct(step=0, instruction="Close each group at its matching brace.")
    assert not leaks(harmless, run.task)
