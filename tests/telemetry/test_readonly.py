"""The read-only SQL interface: writes refused with data unchanged, clear errors, the commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from branchpoint.errors import DatabaseBusyError, ReadOnlyQueryError
from branchpoint.telemetry.commands import sql
from branchpoint.telemetry.query import MissingDatabaseError, readonly_query
from branchpoint.telemetry.readonly import InvalidQueryError, read_statements
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run

WRITES = [
    "DELETE FROM spans",
    "DROP TABLE spans",
    "DROP VIEW runs",
    "INSERT INTO spans (span_id, trace_id) VALUES ('x', 'y')",
    "UPDATE spans SET name = 'x'",
    "COPY spans TO '{out}'",
    "COPY (SELECT * FROM spans) TO '{out}' (FORMAT PARQUET)",
    "ATTACH '{other}' AS other",
    "PRAGMA enable_checkpoint_on_shutdown",
    "PRAGMA threads = 1",
    "SET threads = 1",
    "CHECKPOINT",
    "CREATE TABLE t AS SELECT 1",
    "EXPLAIN ANALYZE DELETE FROM spans",
    "SELECT 1; DELETE FROM spans",
    "INSTALL httpfs",
    "EXPORT DATABASE '{other}'",
    "BEGIN TRANSACTION",
]
READS = [
    "SELECT * FROM runs",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "DESCRIBE spans",
    "SHOW TABLES",
    "SUMMARIZE steps",
    "FROM steps",
    "EXPLAIN SELECT * FROM spans",
    "PRAGMA table_info('spans')",
    "SELECT 1; SELECT 2",
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.duckdb"
    store = DuckDBTraceStore(path)
    provider = setup_tracing(store, "test")
    emit_run(provider, "r1")
    flush(provider)
    provider.shutdown()
    store.close()
    return path


def _snapshot(db: Path) -> list[tuple[object, ...]]:
    return readonly_query(db, "SELECT span_id, name, attributes FROM spans ORDER BY span_id")[1]


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused_and_change_nothing(db: Path, tmp_path: Path, statement: str) -> None:
    before = _snapshot(db)
    out, other = tmp_path / "out.file", tmp_path / "other.duckdb"
    with pytest.raises(ReadOnlyQueryError, match="read-only"):
        readonly_query(db, statement.format(out=out, other=other))
    assert _snapshot(db) == before and len(before) == 8
    assert not out.exists() and not other.exists()


@pytest.mark.parametrize("statement", READS)
def test_reads_pass(db: Path, statement: str) -> None:
    assert read_statements(statement)
    columns, _ = readonly_query(db, statement)
    assert columns


def test_last_statement_result_and_params(db: Path) -> None:
    assert readonly_query(db, "SELECT 1; SELECT count(*) FROM steps WHERE run_id = ?", ["r1"])[
        1
    ] == [(3,)]


def test_missing_file_and_bad_sql_are_clear_errors(db: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingDatabaseError, match="--db"):
        readonly_query(tmp_path / "nope.duckdb", "SELECT 1")
    assert not (tmp_path / "nope.duckdb").exists()
    with pytest.raises(InvalidQueryError):
        readonly_query(db, "SELEC 1")
    with pytest.raises(InvalidQueryError, match="SHOW TABLES"):
        readonly_query(db, "SELECT * FROM no_such_table")


_HOLDER = """
import sys, time
from branchpoint.telemetry.store import DuckDBTraceStore
store = DuckDBTraceStore(sys.argv[1])
print("open", flush=True)
time.sleep(60)
"""


def test_locked_file_without_a_sink_is_database_busy(db: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError, match="wait for the run to finish"):
            readonly_query(db, "SELECT count(*) FROM spans")
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("sql")(sql)
    app.command("noop")(lambda: None)
    return app


def test_sql_command_formats(db: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        _app(),
        ["sql", "SELECT step, agent FROM steps ORDER BY step", "--db", str(db), "--format", "json"],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [
        {"step": 0, "agent": "Planner"},
        {"step": 1, "agent": "Solver"},
        {"step": 2, "agent": "Verifier"},
    ]
    out = runner.invoke(
        _app(),
        ["sql", "SELECT step, agent FROM steps ORDER BY step", "--db", str(db), "--format", "csv"],
    )
    assert out.output.splitlines() == ["step,agent", "0,Planner", "1,Solver", "2,Verifier"]
    out = runner.invoke(_app(), ["sql", "SELECT agent FROM steps WHERE step = 2", "--db", str(db)])
    assert "Verifier" in out.output and "1 row(s)" in out.output


def test_sql_prompt_runs_queries_until_quit(db: Path) -> None:
    runner = CliRunner()
    lines = "SELECT count(*) AS n FROM steps\nDELETE FROM spans\nSELECT 'still' AS here\n.quit\nSELECT 'after'\n"
    out = runner.invoke(_app(), ["sql", "--db", str(db), "--format", "csv"], input=lines)
    assert out.exit_code == 2, out.output  # piped in, and one statement was refused
    assert "n\n3" in out.output and "refused" in out.output and "here\nstill" in out.output
    assert "after" not in out.output
    assert readonly_query(db, "SELECT count(*) FROM spans")[1] == [(8,)]
