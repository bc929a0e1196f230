"""A trace store that cannot be written fails before anything runs, and storage errors mid-run
surface as one-line errors instead of a success."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from branchpoint.errors import BranchpointError
from branchpoint.model import SCHEMA_VERSION, SchemaVersionError
from branchpoint.telemetry.query import readonly_query
from branchpoint.telemetry.store import (
    DuckDBTraceStore,
    TraceDatabaseError,
    TraceStorageError,
    check_trace_db,
)
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run


def _good(path: Path, runs: int = 1) -> Path:
    store = DuckDBTraceStore(path)
    provider = setup_tracing(store, "test")
    for i in range(runs):
        emit_run(provider, f"r{i}")
    flush(provider)
    provider.shutdown()
    store.close()
    return path


def _truncated(tmp: Path) -> Path:
    data = _good(tmp / "whole.duckdb").read_bytes()
    path = tmp / "truncated.duckdb"
    path.write_bytes(data[: len(data) // 2])
    return path


def _random(tmp: Path) -> Path:
    path = tmp / "random.duckdb"
    path.write_bytes(os.urandom(64 * 1024))
    return path


def _sqlite(tmp: Path) -> Path:
    path = tmp / "lite.duckdb"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.duckdb"
    path.write_bytes(b"")
    return path


BAD = {"truncated": _truncated, "random bytes": _random, "sqlite": _sqlite, "empty": _empty}


@pytest.mark.parametrize("kind", BAD)
def test_a_file_that_is_not_a_trace_database_is_refused_untouched(
    tmp_path: Path, kind: str
) -> None:
    path = BAD[kind](tmp_path)
    before = path.read_bytes()
    siblings = set(tmp_path.iterdir())
    with pytest.raises(TraceDatabaseError) as err:
        check_trace_db(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(TraceDatabaseError):
        DuckDBTraceStore(path)
    assert path.read_bytes() == before
    assert set(tmp_path.iterdir()) == siblings  # no WAL, no checkpoints file, nothing


def test_dev_null_and_a_directory_are_refused() -> None:
    for path in ("/dev/null", "/tmp"):
        with pytest.raises(TraceDatabaseError, match="not a regular file"):
            check_trace_db(path)
    assert not Path("/dev/null.wal").exists()


def test_an_unwritable_location_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    # /proc/sys is read-only for everyone, root included.
    with pytest.raises(TraceDatabaseError, match="not writable|read-only"):
        check_trace_db("/proc/sys/branchpoint/traces.duckdb")


def test_good_new_and_older_files_pass_and_newer_ones_are_refused(tmp_path: Path) -> None:
    check_trace_db(":memory:")
    check_trace_db(tmp_path / "new" / "traces.duckdb")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    good = _good(tmp_path / "good.duckdb")
    check_trace_db(good)
    con = duckdb.connect(str(good))
    con.execute("UPDATE schema_meta SET value = ?", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(SchemaVersionError, match="upgrade branchpoint"):
        check_trace_db(good)


def _bit_flipped(tmp: Path) -> Path:
    path = _good(tmp / "flipped.duckdb", runs=300)
    data = bytearray(path.read_bytes())
    for offset in range(3 * 4096 + 100, len(data), 997):  # past the headers, every block
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_sql_on_a_bit_flipped_file_is_one_line(tmp_path: Path) -> None:
    path = _bit_flipped(tmp_path)
    with pytest.raises(TraceDatabaseError) as err:
        readonly_query(path, "SELECT count(*), sum(length(attributes)) FROM spans")
    assert "\n" not in str(err.value) and "locked" not in str(err.value)


def test_explain_analyze_is_one_line(tmp_path: Path) -> None:
    path = _good(tmp_path / "t.duckdb")
    for sql in ("EXPLAIN (ANALYZE) SELECT 1", "EXPLAIN ANALYZE SELECT * FROM runs", "EXPLAIN"):
        with pytest.raises(BranchpointError) as err:
            readonly_query(path, sql)
        assert "\n" not in str(err.value)


class BrokenStore:
    """A trace store whose disk is full."""

    def write_spans(self, rows: list[dict[str, Any]] | pa.Table) -> int:
        raise duckdb.IOException('Could not write file "x.duckdb.wal": No space left on device')


def test_a_failed_span_write_fails_the_flush_with_one_line() -> None:
    provider = setup_tracing(BrokenStore(), "test")  # type: ignore[arg-type]
    emit_run(provider, "r1")
    with pytest.raises(TraceStorageError) as err:
        flush(provider)
    assert "No space left on device" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code != 0
    provider.shutdown()


def test_storage_errors_of_the_store_are_trace_storage_errors(tmp_path: Path) -> None:
    store = DuckDBTraceStore(tmp_path / "t.duckdb")
    store._con.close()  # the connection is gone, as after a fatal I/O error
    with pytest.raises(TraceStorageError, match="--resume"):
        store.write_spans([{"span_id": "x", "trace_id": "y", "attributes": {}}])
    with pytest.raises(TraceStorageError, match="--resume"):
        store.write_rows("trials", [{"run_id": "r", "index": 0, "start": 0, "end": 1}])
