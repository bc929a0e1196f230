"""The code team: visible examples from docstrings, the Tester's tool turn, its LDB events, and
the retry rule; the program-of-thought team's answer is its program's output."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from branchpoint.agents import code_team
from branchpoint.agents.code_team import (
    CODE,
    MAX_ATTEMPTS,
    examples_passed,
    run_visible_examples,
    score_code,
)
from branchpoint.agents.pot_team import POT, program_answer, run_program
from branchpoint.agents.teams import TEAMS
from branchpoint.model import Step, Task
from branchpoint.tasks import Example, visible_examples

PROMPT = '''
def add_odd(xs: list) -> int:
    """Sum the odd numbers of xs.
    >>> add_odd([1, 2, 3])
    4
    add_odd([]) == 0
    add_odd([5]) ➞ 5
    """
'''
TASK = Task(
    task_id="t-add-odd",
    question=PROMPT,
    answer="    return sum(x for x in xs if x % 2)\n",
    test="def check(f):\n    assert f([7, 7]) == 14\n",
    entry_point="add_odd",
    source="test",
)
RIGHT = "```python\ndef add_odd(xs):\n    return sum(x for x in xs if x % 2)\n```"
# A reply cut off before its closing fence (out of tokens) still counts as a program.
WRONG = "```python\ndef add_odd(xs):\n    s = 0\n    for x in xs:\n        if x % 2 == 0:\n            s += x\n    return s\n"


def test_visible_examples_are_parsed_from_the_docstring() -> None:
    assert visible_examples(TASK) == [
        Example("add_odd([1, 2, 3])", "4"),
        Example("add_odd([])", "0"),
        Example("add_odd([5])", "5"),
    ]


def test_examples_use_docstring_arrows_and_never_the_hidden_tests() -> None:
    task = TASK.model_copy(
        update={
            "question": 'def f(s):\n    """f("ab") => true\n    f(x) -> 1 - 2 = -1\n    """\n',
            "entry_point": "f",
        }
    )
    assert visible_examples(task) == [Example('f("ab")', "True")]


def test_examples_written_as_a_doctest_comparison_are_examples() -> None:
    """`>>> f(x) == y` (HumanEval/108, 116, 128, 145, 156, 162) and `f(x) # => y`
    (HumanEval/141) gave no examples before session 13: the Tester checked nothing and `ldb`
    traced `f()` with no arguments."""
    task = TASK.model_copy(
        update={
            "question": "def f(a):\n"
            '    """\n    >>> f([]) == 0\n    >>> f([1, 1, 2]) == 3\n'
            "    f('x.txt') # => 'Yes'\n    >>> f(2) == 1 + 1\n    \"\"\"\n",
            "entry_point": "f",
        }
    )
    assert visible_examples(task) == [
        Example("f([])", "0"),
        Example("f([1, 1, 2])", "3"),
        Example("f('x.txt')", "'Yes'"),
    ]


def test_passing_code_passes_and_records_no_trace() -> None:
    turn = run_visible_examples(RIGHT, TASK)
    assert turn.call.ok and turn.call.output.startswith("PASSED: all 3")
    assert turn.events == []


def test_failing_code_names_the_example_and_records_ldb_events() -> None:
    turn = run_visible_examples(WRONG, TASK)
    assert not turn.call.ok
    assert turn.call.output == "FAILED: example 1 of 3: add_odd([1, 2, 3]) gave 2, expected 4."
    names = [name for name, _ in turn.events]
    assert names[-1] == "ldb.trace" and names.count("ldb.block") >= 4
    summary = turn.events[-1][1]
    assert summary["ldb.call"] == "add_odd([1, 2, 3])" and summary["ldb.result"] == "2"
    first = turn.events[0][1]
    assert first["ldb.source"] == "s = 0" and json.loads(first["ldb.values"])["s"] == "0"


def test_code_that_raises_or_is_missing_fails() -> None:
    assert (
        "gave raised NameError"
        in run_visible_examples("```python\ndef add_odd(xs):\n    return y\n```", TASK).call.output
    )
    assert run_visible_examples("I cannot.", TASK).call.output.startswith("FAILED: no code block")


def test_the_hidden_tests_score_the_last_program() -> None:
    steps = [
        Step(run_id="r", index=0, agent="Coder", kind="message", content=WRONG),
        Step(run_id="r", index=1, agent="Tester", kind="tool_result", content="FAILED: ..."),
        Step(run_id="r", index=2, agent="Coder", kind="message", content=RIGHT),
    ]
    assert score_code(TASK, None, steps)
    assert not score_code(TASK, None, steps[:2])


def test_a_program_that_never_returns_is_stopped_at_the_test_limit_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Tester's run and its block trace, the hidden tests and the milestones each wait
    TEST_TIMEOUT_S (HumanEval's 3 s; 0.5 s here) for a program that sleeps, not the sandbox's
    general 10 s: the demo's 0.5B Coder writes endless loops."""
    monkeypatch.setattr(code_team, "TEST_TIMEOUT_S", 0.5)
    sleeper = "```python\ndef add_odd(xs):\n    import time\n    time.sleep(60)\n```"
    steps = [Step(run_id="r", index=0, agent="Coder", kind="message", content=sleeper)]
    timings = {}
    for name, call in (
        ("tester", lambda: run_visible_examples(sleeper, TASK)),
        ("hidden tests", lambda: score_code(TASK, None, steps)),
        ("milestones", lambda: examples_passed(TASK, steps)),
    ):
        started = time.monotonic()
        timings[name] = (call(), time.monotonic() - started)
    turn = timings["tester"][0]
    assert turn.call.output.startswith(
        "FAILED: the code did not finish example 1: add_odd([1, 2, 3])"
    )
    assert "timeout after 0.5 s" in turn.call.output
    assert timings["hidden tests"][0] is False and timings["milestones"][0] == 0
    assert all(seconds < 2.5 for _, seconds in timings.values()), timings


def test_the_coders_model_stops_at_its_closing_fence_and_the_fence_is_put_back() -> None:
    from branchpoint.agents.sandbox import CLOSING_FENCE, close_open_fence

    assert CODE.agent("Coder").stop == (CLOSING_FENCE,) and CODE.agent("Tester").stop == ()
    assert POT.agent("Solver").stop == (CLOSING_FENCE,)
    # What llama.cpp returns when the stop sequence matched: the text before it.
    cut = "Here it is:\n```python\ndef add_odd(xs):\n    return sum(x for x in xs if x % 2)"
    assert close_open_fence(cut) == cut + "\n```"
    assert run_visible_examples(close_open_fence(cut), TASK).call.ok
    assert close_open_fence(RIGHT) == RIGHT and close_open_fence("no code") == "no code"


def test_the_coder_retries_up_to_the_limit() -> None:
    advance = CODE.advance
    assert advance({}, "Coder", "```python\n...```").next == "Tester"
    assert advance({}, "Tester", "PASSED: all 3").done
    retry = advance({"stall": 0}, "Tester", "FAILED: example 1")
    assert (retry.next, retry.done, retry.kind) == ("Coder", False, "tool_result")
    assert advance({"stall": MAX_ATTEMPTS - 1}, "Tester", "FAILED: example 1").done
    assert TEAMS["code"] is CODE and TEAMS["math-pot"] is POT


def test_the_pot_answer_is_the_programs_output() -> None:
    turn = run_program("```python\na = 3 * 4\nprint(a - 2)\n```", TASK)
    assert turn.call.output == "The program printed:\n10"
    assert program_answer(turn.call.output) == "10"
    ran = POT.advance({}, "Runner", turn.call.output)
    assert (ran.next, ran.final_answer) == ("Verifier", "10")
    accepted = POT.advance({"final_answer": "10"}, "Verifier", "ACCEPT")
    assert accepted.done and accepted.final_answer == "10"
    rejected = POT.advance({"final_answer": "10"}, "Verifier", "REJECT: wrong operand")
    assert rejected.next == "Solver" and not rejected.done and rejected.final_answer is None


def test_a_fresh_host_process_finds_the_builtin_tool_turns() -> None:
    # Hosts never look their team up, so the registering modules may not be imported there.
    code = (
        "from branchpoint.agents.tool_turns import TOOL_TURNS, find_tool_turn\n"
        "assert not TOOL_TURNS\n"
        "assert find_tool_turn(('visible_examples',))[0] == 'visible_examples'\n"
        "assert find_tool_turn(('run_program',))[0] == 'run_program'\n"
        "assert find_tool_turn(('python',)) is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_code_runs_milestones_are_its_visible_examples_passed_by_its_last_program() -> None:
    from branchpoint.interventions.milestones import achieved, predicate_milestones

    milestones = predicate_milestones(TASK)
    assert [(m.title, m.action, m.result) for m in milestones] == [
        ("example 1", "add_odd([1, 2, 3])", "4"),
        ("example 2", "add_odd([])", "0"),
        ("example 3", "add_odd([5])", "5"),
    ]

    def run(*replies: str) -> list[Step]:
        return [
            Step(run_id="r", index=i, agent="Coder", kind="message", content=c)
            for i, c in enumerate(replies)
        ]

    assert achieved(milestones, run(WRONG), TASK) == 1  # only add_odd([]) == 0 holds
    assert achieved(milestones, run(WRONG, RIGHT), TASK) == 3  # the last program counts
    assert achieved(milestones, run(RIGHT, WRONG), TASK) == 1
    assert achieved(milestones, run("no code here"), TASK) == 0
