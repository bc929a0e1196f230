"""Who&When import of all shared samples, role normalisation and exact step-level scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dover_samples import WHOWHEN
from shared_data import needs_shared_data

from branchpoint.errors import TaskFileError
from branchpoint.interventions.segment import segment_by_kinds
from branchpoint.interventions.whowhen import (
    agent_and_kind,
    load_whowhen,
    load_whowhen_dir,
    score_attribution,
    truths_of,
)
from branchpoint.model import Hypothesis


@needs_shared_data
def test_all_samples_import_with_consistent_truths() -> None:
    logs = load_whowhen_dir(WHOWHEN)
    assert len(logs) == 10
    for log in logs:
        raw = json.loads((WHOWHEN / f"{log.run.run_id.removeprefix('whowhen-')}.json").read_text())
        assert [s.index for s in log.steps] == list(range(len(raw["history"])))
        assert log.run.status == "failed" and log.run.n_steps == len(log.steps)
        assert log.run.team == (
            "whowhen-ag2" if "algorithm" in log.run.run_id else "whowhen-handcrafted"
        )
        assert log.mistake_step == int(raw["mistake_step"])
        assert log.run.task.answer == str(raw["ground_truth"])
        assert all("(" not in s.agent for s in log.steps)


@needs_shared_data
def test_handcrafted_roles_and_replans() -> None:
    log = load_whowhen(WHOWHEN / "hand_crafted_20.json")
    kinds = {s.index: (s.agent, s.kind) for s in log.steps}
    assert kinds[0] == ("human", "message")
    assert kinds[1] == ("Orchestrator", "plan")  # "Initial plan:"
    assert kinds[2] == ("Orchestrator", "message")  # "Updated Ledger:"
    assert kinds[3] == ("Orchestrator", "instruction")  # "Orchestrator (-> WebSurfer)"
    assert kinds[35] == ("Orchestrator", "plan")  # "New plan:" after "Stalled.... Replanning..."
    assert [(t.start, t.end) for t in segment_by_kinds(log.steps)] == [(0, 35), (35, 67)]


@needs_shared_data
def test_ag2_names_and_terminal() -> None:
    log = load_whowhen(WHOWHEN / "algorithm_generated_14.json")
    assert log.steps[1].agent == "Culinary_Awards_Expert"
    assert log.steps[2].kind == "tool_result"
    assert agent_and_kind({"role": "Orchestrator (termination condition)", "content": ""}) == (
        "Orchestrator",
        "final",
    )


@needs_shared_data
def test_step_scoring_is_exact_integer_match() -> None:
    logs = load_whowhen_dir(WHOWHEN)
    truths = truths_of(logs)
    perfect = dict(truths)
    assert score_attribution(perfect, truths)["step_accuracy"] == 1.0
    # hand_crafted_1's mistake is step 12: step 1 or 2 must not count ("12" contains "1", "2").
    off = {
        rid: t.model_copy(update={"step": 1 if t.step == 12 else t.step})
        for rid, t in truths.items()
    }
    score = score_attribution(off, truths)
    assert score["step_correct"] == 9 and score["agent_correct"] == 10
    none = {rid: None for rid in truths}
    assert score_attribution(none, truths)["agent_accuracy"] == 0.0


def test_agent_scoring_ignores_case_and_counts_missing_as_wrong() -> None:
    truth = {
        "r1": Hypothesis(run_id="r1", agent="WebSurfer", step=3, reason="", method="ground_truth"),
        "r2": Hypothesis(run_id="r2", agent="Assistant", step=5, reason="", method="ground_truth"),
    }
    pred = {"r1": Hypothesis(run_id="r1", agent="websurfer", step=4, reason="", method="m")}
    score = score_attribution(pred, truth)
    assert (score["agent_accuracy"], score["step_accuracy"], score["predicted"]) == (0.5, 0.0, 1)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        (json.dumps({"question": "q", "history": []}), "lacks mistake_agent, mistake_step"),
        (
            json.dumps(
                {
                    "question": "q",
                    "history": [{"role": "a", "content": "x"}],
                    "mistake_agent": "a",
                    "mistake_step": "one",
                }
            ),
            "is not an integer",
        ),
        (
            json.dumps(
                {
                    "question": "q",
                    "history": [{"role": "a", "content": "x"}],
                    "mistake_agent": "a",
                    "mistake_step": "3",
                }
            ),
            "outside history",
        ),
    ],
)
def test_malformed_files_name_the_path(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TaskFileError, match=problem) as info:
        load_whowhen(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_task_file_error(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot be read"):
        load_whowhen(tmp_path / "absent.json")
