"""Predicate milestones from real GSM8K and GSM-Plus solutions, number matching and progress."""

from __future__ import annotations

import json

import pytest
from dover_samples import DATA, math_run
from shared_data import needs_shared_data

from branchpoint.interventions.milestones import (
    achieved,
    normalise_number,
    number_tokens,
    predicate_milestones,
    progress_delta,
)
from branchpoint.model import Step, Task


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def _gsm8k(i: int) -> Task:
    row = _rows("gsm8k_test_first200.jsonl")[i]
    return Task(
        task_id=f"gsm8k-{i}",
        question=row["question"],
        solution=row["answer"],
        answer=row["answer"].split("####")[-1].strip(),
    )


def _gsmplus(i: int) -> Task:
    row = _rows("gsmplus_testmini_dev.jsonl")[i]
    return Task(
        task_id=f"gsmplus-{i}",
        question=row["question"],
        solution=row["solution"],
        answer=row["answer"],
    )


def test_normaliser() -> None:
    assert normalise_number("1,200") == normalise_number("1200.0") == "1200"
    assert normalise_number("$0.50") == "0.5"
    assert normalise_number("abc") is None
    assert number_tokens("paid $1,200.50 for 3 items, 12000 total") == {"1200.5", "3", "12000"}


@needs_shared_data
def test_gsm8k_annotations_give_intermediate_values() -> None:
    ducks = predicate_milestones(_gsm8k(0))
    assert [m.result for m in ducks] == ["9", "18"]
    assert ducks[0].action == "16-3-4"
    # Josh's house: 130000, 120000, 200000, 70000 (none of them is in the question)
    assert [m.result for m in predicate_milestones(_gsm8k(2))] == [
        "130000",
        "120000",
        "200000",
        "70000",
    ]


@needs_shared_data
def test_gsm8k_values_stated_in_the_question_are_skipped() -> None:
    # Robe: 2/2=1, 2+1=3; "2" is in the question but 1 and 3 are not.
    assert [m.result for m in predicate_milestones(_gsm8k(1))] == ["1", "3"]


@needs_shared_data
def test_gsmplus_plain_solution_lines() -> None:
    heels = predicate_milestones(_gsmplus(0))
    assert [m.result for m in heels] == ["20", "6", "26", "4.33"]
    assert heels[0].action.startswith("The total height of the heels")


@needs_shared_data
def test_gsmplus_annotated_and_unanswerable_solutions() -> None:
    assert [m.result for m in predicate_milestones(_gsmplus(1))] == ["60", "20", "80", "25", "3.2"]
    rows = _rows("gsmplus_testmini_dev.jsonl")
    critical = next(i for i, r in enumerate(rows) if r["perturbation_type"] == "critical thinking")
    assert predicate_milestones(_gsmplus(critical)) == []


@needs_shared_data
@pytest.mark.parametrize("i", range(0, 200, 7))
def test_every_sampled_gsm8k_problem_has_milestones_ending_at_the_answer(i: int) -> None:
    task = _gsm8k(i)
    milestones = predicate_milestones(task)
    final = normalise_number(task.answer or "")
    assert milestones or final in number_tokens(task.question)
    assert all(normalise_number(m.result) == m.result for m in milestones)


def test_achieved_counts_values_as_whole_tokens() -> None:
    run, steps = math_run()
    milestones = predicate_milestones(run.task)
    assert achieved(milestones, steps) == 0  # the run computed 8 and 16, never 9 or 18
    fixed = [
        *steps[:1],
        Step(
            run_id="f",
            index=1,
            agent="Solver",
            kind="message",
            content="16 - 3 - 4 = 9 eggs, 9 * 2 = 18.0 dollars",
        ),
    ]
    assert achieved(milestones, fixed) == 2
    near = [Step(run_id="f", index=1, agent="Solver", kind="message", content="99 and 180")]
    assert achieved(milestones, near) == 0


def test_progress_delta() -> None:
    assert progress_delta(2, 0, 2) == 1.0
    assert progress_delta(1, 2, 4) == -0.25
    assert progress_delta(3, 1, 0) == 0.0
