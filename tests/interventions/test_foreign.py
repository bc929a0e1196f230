"""Who&When logs imported as runs in the trace database, attributed by replayed judge outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dover_samples import RECORDED_MODEL, RECORDED_WHOWHEN, RECORDINGS, WHOWHEN
from shared_data import needs_shared_data

from branchpoint.agents.recording import JsonlRecordStore, RecordingClient
from branchpoint.interventions.foreign import attribute_logs, import_log
from branchpoint.interventions.judge import ChatClientJudge
from branchpoint.interventions.whowhen import load_whowhen_dir
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

pytestmark = [pytest.mark.ray, needs_shared_data]

METHODS = ("all_at_once", "step_by_step", "binary_search", "dover")


def test_import_and_attribute_whowhen_logs(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in RECORDED_WHOWHEN:
        shutil.copy(WHOWHEN / name, folder / name)
    logs = load_whowhen_dir(folder)
    judge = ChatClientJudge(
        RecordingClient(None, JsonlRecordStore(RECORDINGS), RECORDED_MODEL, "replay")
    )
    with Session(Settings(db_path=tmp_path / "ww.duckdb")) as session:
        for log in logs:
            import_log(session.tracer, log)
        session.flush()
        scores = attribute_logs(session.store, logs, METHODS, judge)
        runs = session.store.query("SELECT run_id, status, n_steps, team FROM runs ORDER BY run_id")
        stored = session.store.query("SELECT method, count(*) AS n FROM hypotheses GROUP BY method")
        steps = session.store.query(
            "SELECT run_id, step, agent FROM steps WHERE step = 0 ORDER BY run_id"
        )
    judge.close()

    by_id = sorted(logs, key=lambda log: log.run.run_id)
    assert [(r["run_id"], r["status"], r["n_steps"]) for r in runs] == [
        (log.run.run_id, "failed", len(log.steps)) for log in by_id
    ]
    assert {r["team"] for r in runs} <= {"whowhen-handcrafted", "whowhen-ag2"}
    assert [s["agent"] for s in steps] == [log.steps[0].agent for log in by_id]
    assert set(scores) == set(METHODS) and all(s["n"] == 2 for s in scores.values())
    # the recorded small model: binary search got no usable reply on hand_crafted_7
    assert scores["binary_search"]["predicted"] == 1
    assert {row["method"] for row in stored} <= set(METHODS)
    assert sum(row["n"] for row in stored) >= sum(s["predicted"] for s in scores.values())
