"""Turning judge replies into checked data: JSON extraction and the reply validators."""

from __future__ import annotations

import pytest
from dover_samples import math_run

from branchpoint.interventions.attribution import _blame_parser
from branchpoint.interventions.judge import (
    extract_json_object,
    parse_step_index,
    render_log,
    render_prompt,
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"step": 3}', {"step": 3}),
        ('```json\n{"agent": "Solver", "step": 1}\n```', {"agent": "Solver", "step": 1}),
        (
            'I think {this} is it: {"step": 2, "reason": "x {y}"} and more {"step": 9}',
            {"step": 2, "reason": "x {y}"},
        ),
        ('[{"step": 1}] then {"step": 4}', {"step": 1}),
    ],
)
def test_first_json_object_is_extracted(reply: str, expected: dict[str, object]) -> None:
    assert extract_json_object(reply) == expected


@pytest.mark.parametrize("reply", ["no json here", '"step": 3', "{step: 3}", ""])
def test_no_object_is_a_value_error(reply: str) -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json_object(reply)


def test_step_index_parsing() -> None:
    assert [parse_step_index(v) for v in (3, "4", " 5 ", 6.0)] == [3, 4, 5, 6]
    assert [parse_step_index(v) for v in (True, "x", 2.5, None, "-1")] == [None] * 5


def test_blame_validator_rejects_out_of_range_steps_and_unknown_agents() -> None:
    _, steps = math_run()
    parse = _blame_parser(steps, 0, 5)
    assert parse({"agent": "solver", "step": "1", "reason": "r"}) == ("Solver", 1, "r")
    with pytest.raises(ValueError, match="between 0 and 5"):
        parse({"agent": "Solver", "step": 6})
    with pytest.raises(ValueError, match="one of: Planner, Solver, Verifier"):
        parse({"agent": "Critic", "step": 1})
    with pytest.raises(KeyError):
        parse({"agent": "Solver"})


def test_prompts_render_with_indices_and_ground_truth() -> None:
    run, steps = math_run()
    system, user = render_prompt(
        "all_at_once", question=run.task.question, answer="18", log=render_log(steps), agents="A"
    )
    assert "JSON" in system and "Correct answer: 18" in user and "[Step 5] Verifier:" in user


def test_long_logs_are_cut_to_fit_a_small_context() -> None:
    _, steps = math_run()
    long = [s.model_copy(update={"content": "x" * 5000}) for s in steps]
    assert len(render_log(long, max_chars=400, max_total=600)) < 6 * (100 + 30)
