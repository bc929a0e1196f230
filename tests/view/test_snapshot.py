"""The viewer's reader: a private copy of the trace database, never a lock on the live file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from branchpoint.errors import ReadOnlyQueryError
from branchpoint.telemetry.query import MissingDatabaseError
from branchpoint.view import snapshot
from branchpoint.view.snapshot import TraceReader

from . import tracedb


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.duckdb"
    tracedb.build(path)
    return path


def writer(db: Path, rows: int, hold_s: float) -> subprocess.Popen[str]:
    """Another process that opens the file read-write, adds `rows` spans and keeps it open."""
    code = f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from view import tracedb
        from branchpoint.telemetry.store import DuckDBTraceStore
        store = DuckDBTraceStore({str(db)!r})
        store.write_spans([tracedb.run_span(f"live-{{i}}", "succeeded", tracedb.T0)
                           for i in range({rows})])
        print("written", flush=True)
        time.sleep({hold_s})
        store.close()
    """
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )


def count_live(reader: TraceReader) -> int:
    return int(reader.query("SELECT count(*) AS n FROM runs WHERE run_id LIKE 'live-%'")[0]["n"])


def test_a_missing_database_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingDatabaseError, match="no trace database at"):
        TraceReader(tmp_path / "absent.duckdb")


def test_reads_while_another_process_holds_the_file_for_writing(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "REFRESH_SECONDS", 0.0)
    reader = TraceReader(db)
    live = writer(db, rows=3, hold_s=20)
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "written"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(db), read_only=True)  # the plain read-only path is locked out
        assert count_live(reader) == 3
    finally:
        live.kill()
        live.wait()
        reader.close()


def test_a_writer_can_start_while_the_reader_is_reading(db: Path) -> None:
    reader = TraceReader(db)
    held = reader.acquire()  # a query in flight: the copy's connection is open
    try:
        assert held.connection is not None
        live = writer(db, rows=1, hold_s=0)
        assert live.wait(timeout=120) == 0
    finally:
        reader.release(held)
        reader.close()


def test_a_changed_file_is_copied_again_and_old_copies_are_removed(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "REFRESH_SECONDS", 0.0)
    reader = TraceReader(db)
    assert count_live(reader) == 0
    first = reader.acquire()
    reader.release(first)
    assert writer(db, rows=2, hold_s=0).wait(timeout=120) == 0
    time.sleep(0.01)
    assert count_live(reader) == 2
    assert not first.path.exists() and first.connection is None
    folder = first.path.parent
    reader.close()
    assert not folder.exists()


def test_an_unchanged_file_is_not_copied_again(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "REFRESH_SECONDS", 0.0)
    reader = TraceReader(db)
    reader.query("SELECT 1")
    first = reader.taken_at
    reader.query("SELECT 1")
    assert reader.taken_at == first
    reader.close()


def test_queries_are_vetted_and_cannot_reach_files(db: Path) -> None:
    reader = TraceReader(db)
    try:
        with pytest.raises(ReadOnlyQueryError):
            reader.query("DELETE FROM spans")
        with pytest.raises(ReadOnlyQueryError):  # vetted by the parser before it runs
            reader.query("SELECT * FROM read_text('/etc/hostname')")
    finally:
        reader.close()
