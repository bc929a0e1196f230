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
        path = WHOWHEN / f"{log.run.run_id.removeprefix('whowhen-').replace('-', '_')}.json"
        raw = json.loads(path.read_text())
        assert [s.index for s in log.steps] == list(range(len(raw["history"])))
        assert log.run.status == "failed" and log.run.n_steps == len(log.steps)
        assert log.run.team == (
            "whowhen-ag2" if "algorithm" in log.run.run_id else "whowhen-handcrafted"
        )
        assert log.run.source == f"whowhen:{path}"
        assert log.truth is not None and log.truth.step == int(raw["mistake_step"])
        assert log.truth.agent == raw["mistake_agent"].strip()
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


def _log(question: str = "q", name: str | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"role": "Orchestrator (thought)", "content": "Initial plan: x"}
    if name:
        entry = {"name": name, "role": "assistant", "content": "x"}
    return {
        "question": question,
        "ground_truth": "1",
        "history": [entry, {"role": "WebSurfer", "content": "y"}],
        "mistake_agent": "WebSurfer",
        "mistake_step": "1",
        "mistake_reason": "r",
    }


def test_upstream_layout_gives_one_run_per_file(tmp_path: Path) -> None:
    """Bug 4: run ids were the file stem, so Hand-Crafted/2.json and Algorithm-Generated/2.json
    merged into one run."""
    (tmp_path / "Hand-Crafted").mkdir()
    (tmp_path / "Algorithm-Generated").mkdir()
    (tmp_path / "Hand-Crafted" / "2.json").write_text(json.dumps(_log("hand")))
    (tmp_path / "Algorithm-Generated" / "2.json").write_text(json.dumps(_log("ag2", "Expert")))
    logs = load_whowhen_dir(tmp_path)
    assert sorted(log.run.run_id for log in logs) == [
        "whowhen-algorithm_generated-2",
        "whowhen-hand_crafted-2",
    ]
    # the sample file name and the upstream layout name the same log the same way
    assert load_whowhen(WHOWHEN / "hand_crafted_7.json").run.run_id == "whowhen-hand_crafted-7"


def test_a_parent_folder_is_walked_recursively(tmp_path: Path) -> None:
    """Bug 5: a folder whose logs are in subfolders imported nothing."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "hand_crafted_9.json").write_text(json.dumps(_log()))
    assert [log.run.run_id for log in load_whowhen_dir(tmp_path)] == ["whowhen-hand_crafted-9"]
