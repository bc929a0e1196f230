"""Who&When logs imported as runs in the trace database, attributed by replayed judge outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dover_samples import RECORDED_MODEL, RECORDED_WHOWHEN, RECORDINGS, WHOWHEN
from shared_data import needs_shared_data

from branchpoint.agents.recording import JsonlRecordStore, RecordingClient
from branchpoint.importers import import_path
from branchpoint.interventions.foreign import attribute_logs
from branchpoint.interventions.judge import ChatClientJudge
from branchpoint.telemetry.store import DuckDBTraceStore

pytestmark = [pytest.mark.ray, needs_shared_data]

METHODS = ("all_at_once", "step_by_step", "binary_search", "dover")


def test_import_and_attribute_whowhen_logs(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in RECORDED_WHOWHEN:
        shutil.copy(WHOWHEN / name, folder / name)
    judge = ChatClientJudge(
        RecordingClient(None, JsonlRecordStore(RECORDINGS), RECORDED_MODEL, "replay")
    )
    store = DuckDBTraceStore(tmp_path / "ww.duckdb")
    logs = import_path(store, "whowhen", folder).logs
    scores = attribute_logs(store, logs, METHODS, judge)
    runs = store.query("SELECT run_id, status, n_steps, team FROM runs ORDER BY run_id")
    stored = store.query("SELECT method, count(*) AS n FROM hypotheses GROUP BY method")
    steps = store.query("SELECT run_id, step, agent FROM steps WHERE step = 0 ORDER BY run_id")
    store.close()
    judge.close()

    by_id = sorted(logs, key=lambda log: log.run.run_id)
    assert [(r["run_id"], r["status"], r["n_steps"]) for r in runs] == [
        (log.run.run_id, "failed", len(log.steps)) for log in by_id
    ]
    assert {r["team"] for r in runs} <= {"whowhen-handcrafted", "whowhen-ag2"}
    assert [s["agent"] for s in steps] == [log.steps[0].agent for log in by_id]
    assert set(scores) == set(METHODS) and all(s["n"] == 2 for s in scores.values())
    assert all(0 <= s["any_step_accuracy"] <= 1 for s in scores.values())
    assert {row["method"] for row in stored} <= set(METHODS)
    assert sum(row["n"] for row in stored) >= sum(s["predicted"] for s in scores.values())


def test_ground_truth_predicts_every_whowhen_annotation(tmp_path: Path) -> None:
    """Bug 3: `--methods ground_truth` predicted nothing on Who&When logs (0/58, 0/126)."""
    store = DuckDBTraceStore(":memory:")
    logs = import_path(store, "whowhen", WHOWHEN).logs
    scores = attribute_logs(store, logs, ("ground_truth",), None)["ground_truth"]
    assert (scores["n"], scores["predicted"]) == (10, 10)
    assert scores["joint_accuracy"] == scores["any_step_accuracy"] == 1.0
