"""Importing Who&When logs into the trace database: idempotent, recursive, tolerant of strays,
and readable back as runs that other commands can load (and refuse to fork)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from branchpoint.errors import NotReplayableError
from branchpoint.importers import ImportFormatError, import_path
from branchpoint.orchestrator.runs import load_run, load_steps, require_replayable, run_from_row
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.store import DuckDBTraceStore

WHOWHEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "whowhen_samples"
COUNTS = "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM steps) AS steps"


def test_importing_twice_keeps_one_copy_of_every_row(tmp_path: Path) -> None:
    """Bug 4: importing the same folder twice doubled every row."""
    store = DuckDBTraceStore(tmp_path / "t.duckdb")
    first = import_path(store, "whowhen", WHOWHEN)
    counts = store.query(COUNTS)
    second = import_path(store, "whowhen", WHOWHEN)
    assert (len(first.imported), len(second.imported), second.already) == (10, 0, 10)
    assert store.query(COUNTS) == counts == [{"runs": 10, "steps": 271}]
    assert store.query("SELECT count(*) AS n FROM spans")[0]["n"] == 10 + 271
    assert all(
        r["n_steps"] == len(log.steps)
        for r, log in zip(
            store.query("SELECT n_steps FROM runs ORDER BY run_id"),
            sorted(first.logs, key=lambda log: log.run.run_id),
            strict=True,
        )
    )
    assert second.summary() == "imported 0, already imported 10, skipped 0"


def test_other_files_are_skipped_and_reported(tmp_path: Path) -> None:
    """Bug 5: one file of another format blocked the whole folder; subfolders were not read."""
    (tmp_path / "Hand-Crafted").mkdir()
    for name in ("hand_crafted_7.json", "algorithm_generated_9.json"):
        shutil.copy(WHOWHEN / name, tmp_path / "Hand-Crafted" / name)
    (tmp_path / "README.md").write_text("# logs")
    (tmp_path / "Hand-Crafted" / "config.json").write_text(json.dumps({"model": "x"}))
    (tmp_path / "broken.json").write_text("{not json")
    report = import_path(DuckDBTraceStore(":memory:"), "whowhen", tmp_path)
    assert len(report.imported) == 2
    assert [path for path, _ in report.skipped] == [
        "Hand-Crafted/config.json",
        "README.md",
        "broken.json",
    ]
    assert report.summary().startswith(
        "imported 2, already imported 0, skipped 3: Hand-Crafted/config.json (JSON, but not a "
        "Who&When log"
    )


def test_a_folder_without_logs_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ImportFormatError, match="no whowhen log found .*a.txt"):
        import_path(DuckDBTraceStore(":memory:"), "whowhen", tmp_path)
    with pytest.raises(ImportFormatError, match="unknown import format 'csv'; choose one of"):
        import_path(DuckDBTraceStore(":memory:"), "csv", tmp_path)


def test_long_steps_are_cut_and_counted() -> None:
    """Bug 6: step content is capped at A.MAX_CONTENT_CHARS; the import says how many were cut."""
    store = DuckDBTraceStore(":memory:")
    report = import_path(store, "whowhen", WHOWHEN)
    longest = store.query("SELECT max(length(content)) AS n FROM steps")[0]["n"]
    assert report.truncated_steps == 1
    assert A.MAX_CONTENT_CHARS < longest <= A.MAX_CONTENT_CHARS + 30


def test_imported_runs_load_and_refuse_forks() -> None:
    """Bug 1: run_from_row read an imported run's annotation as a Fault (pydantic traceback)."""
    store = DuckDBTraceStore(":memory:")
    import_path(store, "whowhen", WHOWHEN)
    run = load_run(store, "whowhen-hand_crafted-7")
    assert run.faults == () and run.source and run.source.startswith("whowhen:")
    assert [(a.agent, a.root_cause) for a in run.annotations] == [("WebSurfer", True)]
    assert len(load_steps(store, run)) == run.n_steps == 25
    with pytest.raises(NotReplayableError, match="imported .* cannot be forked, replayed"):
        require_replayable(run)


def test_a_database_from_before_the_fix_still_loads() -> None:
    """Older imports stored the annotation (a Hypothesis dump) in `faults`."""
    hypothesis = {
        "run_id": "whowhen-7",
        "agent": "WebSurfer",
        "step": 12,
        "reason": "r",
        "method": "ground_truth",
        "confidence": 1.0,
        "trial": None,
    }
    row = {
        "run_id": "whowhen-7",
        "task_json": json.dumps({"task_id": "t", "question": "q"}),
        "team": "whowhen-handcrafted",
        "model": "unknown",
        "status": "failed",
        "faults": json.dumps([hypothesis]),
    }
    run = run_from_row(row)
    assert run.faults == ()
    assert [(a.agent, a.step) for a in run.annotations] == [("WebSurfer", 12)]
    assert run.source == "imported"
