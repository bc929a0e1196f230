"""`export_parquet` and the `export` command: every table as Parquet with the stored rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from branchpoint.cli import app
from branchpoint.telemetry.export import EXPORT_TABLES, export_parquet, row_to_span, traces_url
from branchpoint.telemetry.exporter import span_to_row
from branchpoint.telemetry.query import MissingDatabaseError
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run


def _db(path: Path) -> DuckDBTraceStore:
    store = DuckDBTraceStore(path)
    provider = setup_tracing(store, "test")
    emit_run(provider, "r1")
    flush(provider)
    provider.shutdown()
    store.write_rows("trials", [{"run_id": "r1", "index": 0, "start": 0, "end": 3}])
    return store


def test_export_parquet_writes_every_table(tmp_path: Path) -> None:
    store = _db(tmp_path / "t.duckdb")
    store.close()
    files = export_parquet(tmp_path / "t.duckdb", tmp_path / "out")
    assert sorted(f.stem for f in files) == sorted(EXPORT_TABLES)
    con = duckdb.connect()
    assert con.execute(
        f"SELECT count(*) FROM '{tmp_path / 'out' / 'spans.parquet'}'"
    ).fetchall() == [(8,)]
    assert con.execute(
        f"SELECT \"end\" FROM '{tmp_path / 'out' / 'trials.parquet'}'"
    ).fetchall() == [(3,)]


def test_export_parquet_while_this_process_holds_the_store(tmp_path: Path) -> None:
    store = _db(tmp_path / "t.duckdb")
    files = export_parquet(tmp_path / "t.duckdb", tmp_path / "out")
    assert all(f.exists() for f in files)
    store.close()
    with pytest.raises(MissingDatabaseError):
        export_parquet(tmp_path / "missing.duckdb", tmp_path / "out")


def test_rows_rebuild_the_same_span(tmp_path: Path) -> None:
    store = _db(tmp_path / "t.duckdb")
    rows = store.query("SELECT * FROM spans")
    for row in rows:
        again = span_to_row(row_to_span(row))
        assert (
            again["span_id"] == row["span_id"] and again["parent_span_id"] == row["parent_span_id"]
        )
        assert again["start_time"] == row["start_time"] and again["attributes"] == row["attributes"]
    assert traces_url("http://h:1/") == "http://h:1/v1/traces" == traces_url("http://h:1/v1/traces")


def test_export_command_needs_a_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--db", str(tmp_path / "t.duckdb")])
    assert result.exit_code == 2 and "--parquet DIR" in result.output
