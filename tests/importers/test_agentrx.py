"""AgentRx import on a small dataset written here in AgentRx's layout, checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from branchpoint.importers import ImportFormatError, import_path, read_path
from branchpoint.interventions.foreign import attribute_logs, score_any
from branchpoint.interventions.whowhen import score_attribution
from branchpoint.model import Hypothesis
from branchpoint.telemetry.store import DuckDBTraceStore

TRAJECTORY = [
    {"role": "human", "content": "How many studio albums did Mercedes Sosa release 2000-2009?"},
    {"role": "Orchestrator (thought)", "content": "Initial plan: ask WebSurfer to search."},
    {"role": "Orchestrator (-> WebSurfer)", "content": "Search Wikipedia for her discography."},
    {"role": "WebSurfer", "content": "I typed 'Mercedes Sosa' and found 2 albums."},
    {"role": "Orchestrator (thought)", "content": "The answer is 2."},
    {"role": "Orchestrator (termination condition)", "content": "FINAL ANSWER: 2"},
]
GROUND_TRUTH = [
    {
        "trajectory_id": "17",
        "failures": [
            # 1-based step 4 is the WebSurfer's turn (index 3); the name's case differs upstream
            {
                "failure_id": "f-a",
                "step_number": 4,
                "step_reason": "missed the 2005 album",
                "failure_category": "Misinterpretation of Tool Output",
                "failed_agent": "Websurfer",
            },
            {
                "failure_id": 2,
                "step_number": 5,
                "step_reason": "accepted an unverified count",
                "failure_category": "Instruction Adherence Failure",
                "failed_agent": "orchestrator",
            },
        ],
        "root_cause": {"failure_id": "f-a", "reason": "the search result was misread"},
    },
    {
        "trajectory_id": 2,
        "failures": [
            {
                "failure_id": 1,
                "step_number": 2,
                "step_reason": "wrong product",
                "failure_category": "Invalid Invocation",
                "failed_agent": "Assistant",
            },
        ],
        "root_cause": {"failure_id": 1},
    },
]
TAU = {
    "task_id": 2,
    "reward": 0.0,
    "info": {"task": {"instruction": "Count the t-shirt options.", "outputs": ["10"]}},
    "traj": [
        {"role": "user", "content": "How many t-shirt options are there?", "index": 1},
        {
            "role": "assistant",
            "content": None,
            "index": 2,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_product_details", "arguments": '{"id": "1"}'},
                }
            ],
        },
        {"role": "tool", "name": "get_product_details", "content": '{"variants": 12}'},
        {"role": "assistant", "content": "There are 11 options."},
    ],
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for folder in ("magentic_dataset", "tau_dataset", "ground_truth"):
        (root / folder).mkdir(parents=True)
    (root / "magentic_dataset" / "17.json").write_text(json.dumps(TRAJECTORY))
    (root / "magentic_dataset" / "18.json").write_text(json.dumps(TRAJECTORY[:3]))
    (root / "tau_dataset" / "2.json").write_text(json.dumps(TAU))
    truth = root / "ground_truth"
    (truth / "magentic_one_ground_truth.json").write_text(json.dumps(GROUND_TRUTH[:1]))
    (truth / "tau_ground_truth.json").write_text(json.dumps(GROUND_TRUTH[1:]))
    return root


def test_magentic_trajectory_with_its_failures(dataset: Path) -> None:
    logs, skipped = read_path("agentrx", dataset)
    assert skipped == []
    by_id = {log.run.run_id: log for log in logs}
    assert sorted(by_id) == ["agentrx-magentic-17", "agentrx-magentic-18", "agentrx-tau-2"]
    log = by_id["agentrx-magentic-17"]
    assert log.run.task.question == TRAJECTORY[0]["content"]
    assert [(s.agent, s.kind) for s in log.steps] == [
        ("human", "message"),
        ("Orchestrator", "plan"),
        ("Orchestrator", "instruction"),
        ("WebSurfer", "message"),
        ("Orchestrator", "message"),
        ("Orchestrator", "final"),
    ]
    assert [
        (a.failure_id, a.step, a.agent, a.root_cause, a.category) for a in log.run.annotations
    ] == [
        ("f-a", 3, "WebSurfer", True, "Misinterpretation of Tool Output"),
        ("2", 4, "Orchestrator", False, "Instruction Adherence Failure"),
    ]
    assert log.truth is not None and (log.truth.agent, log.truth.step) == ("WebSurfer", 3)
    assert by_id["agentrx-magentic-18"].run.annotations == ()  # no ground-truth entry


def test_tau_trajectory_shares_the_ground_truth_schema(dataset: Path) -> None:
    logs, _ = read_path("agentrx", dataset)
    log = next(log for log in logs if log.run.run_id == "agentrx-tau-2")
    assert log.run.task.question == "Count the t-shirt options." and log.run.task.answer == "10"
    assert [(s.agent, s.kind) for s in log.steps] == [
        ("user", "message"),
        ("assistant", "message"),
        ("tool", "tool_result"),
        ("assistant", "message"),
    ]
    assert log.steps[1].content == 'get_product_details({"id": "1"})'
    [failure] = log.run.annotations
    assert (failure.step, failure.agent, failure.failure_id) == (1, "assistant", "1")


def test_ground_truth_scores_full_marks_and_two_figures(dataset: Path) -> None:
    store = DuckDBTraceStore(":memory:")
    report = import_path(store, "agentrx", dataset)
    assert len(report.imported) == 3
    scores = attribute_logs(store, report.logs, ("ground_truth",), None)["ground_truth"]
    # two annotated runs (the third has no ground truth): root cause found exactly in both
    assert (scores["n"], scores["predicted"], scores["joint_accuracy"]) == (2, 2, 1.0)
    assert scores["any_step_accuracy"] == 1.0
    # the second annotated failure counts only for the "any failure" figure
    log = next(log for log in report.logs if log.run.run_id == "agentrx-magentic-17")
    second = Hypothesis(run_id=log.run.run_id, agent="Orchestrator", step=4, reason="", method="m")
    truths = {log.run.run_id: log.truth}
    assert score_attribution({log.run.run_id: second}, truths)["step_accuracy"] == 0.0
    assert score_any({log.run.run_id: second}, [log])["any_step_accuracy"] == 1.0


def test_a_step_number_outside_the_trajectory_is_reported(dataset: Path) -> None:
    bad = [{**GROUND_TRUTH[0], "failures": [{**GROUND_TRUTH[0]["failures"][0], "step_number": 0}]}]
    (dataset / "ground_truth" / "magentic_one_ground_truth.json").write_text(json.dumps(bad))
    _, skipped = read_path("agentrx", dataset)
    assert [path for path, _ in skipped] == ["magentic_dataset/17.json"]
    assert "step_number 0, outside the trajectory's 1-6" in skipped[0][1]
    with pytest.raises(ImportFormatError):
        import_path(DuckDBTraceStore(":memory:"), "agentrx", dataset / "nothing-here")
