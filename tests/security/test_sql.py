"""SQL bypasses tried through the read-only interface, against the file and a live sink: every
one is refused, nothing outside the database is read or reached, and the data is unchanged."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from branchpoint.errors import ReadOnlyQueryError
from branchpoint.telemetry.query import readonly_query
from branchpoint.telemetry.readonly import read_statements
from branchpoint.telemetry.store import DuckDBTraceStore, TraceDatabaseError, connect

SECRET = "the-secret-line"

# (statement, what it tries); {secret} is a file outside the database, {port} a local listener,
# {lite} a SQLite file.
BYPASSES = [
    ("WITH x AS (DELETE FROM spans RETURNING *) SELECT count(*) FROM x", "delete in a CTE"),
    (
        (
            "WITH x AS (INSERT INTO sweeps VALUES ('s', now(), '{{}}', 'running') RETURNING *) "
            "SELECT * FROM x"
        ),
        "insert in a CTE",
    ),
    ("WITH x AS (UPDATE spans SET name = 'x' RETURNING *) SELECT 1", "update in a CTE"),
    ("SELECT (WITH d AS (DELETE FROM outcomes RETURNING 1) SELECT count(*) FROM d)", "nested"),
    ("EXPLAIN ANALYZE WITH x AS (DELETE FROM spans RETURNING *) SELECT 1", "explain analyze"),
    ("EXPLAIN (ANALYZE) SELECT count(*) FROM spans", "explain (analyze)"),
    ("EXPLAIN (FORMAT JSON, ANALYZE TRUE) SELECT 1", "explain analyze option"),
    ("SELECT * FROM read_text('{secret}')", "read a file"),
    ("SELECT content FROM read_blob('{secret}')", "read a file as bytes"),
    ("SELECT * FROM read_csv('{secret}', header = false)", "read a file as CSV"),
    ("SELECT * FROM read_csv_auto('{secret}')", "read a file as CSV"),
    ("SELECT * FROM read_json_objects('{secret}')", "read a file as JSON"),
    ("SELECT * FROM glob('/root/*')", "list a folder"),
    ("SELECT * FROM '{secret}'", "a file as a table (replacement scan)"),
    ("SELECT * FROM read_csv('http://127.0.0.1:{port}/x.csv')", "reach the network"),
    ("SELECT * FROM sqlite_scan('{lite}', 'x')", "an extension's scan"),
    ("SELECT * FROM query('DELETE FROM spans')", "SQL text run by a function"),
    ("SELECT getenv('HOME')", "the environment"),
    ("ATTACH '{lite}' AS lite (TYPE sqlite)", "attach a file"),
    ("INSTALL sqlite", "install an extension"),
    ("LOAD sqlite", "load an extension"),
    ("SET enable_external_access = true", "undo the configuration"),
    ("SELECT 1; DELETE FROM spans", "a write after a read"),
]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def lite(tmp_path: Path) -> Path:
    path = tmp_path / "lite.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE x (a TEXT)")
    con.execute("INSERT INTO x VALUES (?)", [SECRET])
    con.commit()
    con.close()
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    yield server
    server.close()


def _fill(store: DuckDBTraceStore) -> None:
    store.write_spans(
        [
            {
                "span_id": f"{i:016x}",
                "trace_id": "a" * 32,
                "name": "invoke_agent Solver",
                "kind": "step",
                "run_id": "r1",
                "step": i,
                "attributes": {"branchpoint.run_id": "r1", "gen_ai.agent.name": "Solver"},
            }
            for i in range(5)
        ]
    )


TABLES = ("spans", "sweeps", "outcomes")


def _snapshot(query: object) -> list[object]:
    return [query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES]  # type: ignore[operator]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "traces.duckdb"
    store = DuckDBTraceStore(path)
    _fill(store)
    store.close()
    return path


def _file_snapshot(db: Path) -> list[object]:
    return _snapshot(lambda sql: readonly_query(db, sql)[1])


def _no_connection(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(("statement", "tries"), BYPASSES, ids=[t for _, t in BYPASSES])
def test_bypass_is_refused_against_the_file(
    db: Path, secret: Path, lite: Path, listener: socket.socket, statement: str, tries: str
) -> None:
    before = _file_snapshot(db)
    sql = statement.format(secret=secret, lite=lite, port=listener.getsockname()[1])
    with pytest.raises(ReadOnlyQueryError) as refused:
        readonly_query(db, sql)
    assert "\n" not in str(refused.value) and SECRET not in str(refused.value)
    assert _file_snapshot(db) == before
    assert _no_connection(listener)


def test_the_connection_itself_refuses_what_vetting_would_miss(db: Path, secret: Path) -> None:
    """Defence in depth: statements run unvetted on the locked connections still cannot read
    files, install extensions or unlock the configuration."""
    reader = connect(db, read_only=True)
    try:
        for sql in (
            f"SELECT * FROM read_text('{secret}')",
            f"SELECT * FROM '{secret}'",
            "INSTALL sqlite",
            "SET enable_external_access = true",
            "SET autoload_known_extensions = true",
        ):
            with pytest.raises(duckdb.Error):
                reader.execute(sql).fetchall()
    finally:
        reader.close()
    writer = DuckDBTraceStore(db)
    try:
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            writer.query(f"SELECT * FROM read_text('{secret}')")
        with pytest.raises(duckdb.Error, match="locked"):
            writer.query("SET enable_external_access = true")
    finally:
        writer.close()


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM runs", "SHOW TABLES", "DESCRIBE spans", "EXPLAIN SELECT * FROM steps"],
)
def test_reads_still_pass(db: Path, sql: str) -> None:
    assert read_statements(sql)
    assert readonly_query(db, sql)[0]


def test_a_sqlite_file_as_db_is_refused_without_loading_anything(lite: Path) -> None:
    before = lite.read_bytes()
    with pytest.raises(TraceDatabaseError, match="not a readable DuckDB|cannot open") as err:
        readonly_query(lite, "SELECT 1")
    assert "\n" not in str(err.value)
    assert lite.read_bytes() == before


# --- the same bypasses through a live sink (the file is held by the sink actor) ---

_SUBPROCESS_QUERY = """
import sys
from branchpoint.errors import BranchpointError
from branchpoint.telemetry.query import readonly_query
try:
    print(readonly_query(sys.argv[1], sys.argv[2])[1])
except BranchpointError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    tests_dir = Path(__file__).resolve().parents[1]
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(tests_dir.parent)])}},
    )
    yield
    ray.shutdown()


@pytest.mark.ray
def test_bypasses_are_refused_by_a_live_sink(
    ray_local: None, tmp_path: Path, secret: Path, lite: Path, listener: socket.socket
) -> None:
    import ray

    from branchpoint.telemetry.sink import SinkClient, address_file, close_sink, get_or_create_sink

    db = tmp_path / "live.duckdb"
    sink = get_or_create_sink(db)
    SinkClient(sink).write_rows(
        "sweeps",
        [{"sweep_id": "s0", "created_at": "2025-01-01T00:00:00", "spec": {}, "status": "done"}],
    )
    SinkClient(sink).write_spans(
        [
            {
                "span_id": f"{i:016x}",
                "trace_id": "b" * 32,
                "kind": "step",
                "run_id": "r1",
                "step": i,
                "attributes": {"gen_ai.agent.name": "Solver"},
            }
            for i in range(3)
        ]
    )
    assert address_file(db).exists()  # recorded while the sink holds the file

    def live(sql: str) -> list[tuple[object, ...]]:
        return ray.get(sink.read_only_query.remote(sql))[1]  # type: ignore[no-any-return]

    before = _snapshot(live)
    assert len(before[0]) == 3 and len(before[1]) == 1
    port = listener.getsockname()[1]
    for statement, tries in BYPASSES:
        sql = statement.format(secret=secret, lite=lite, port=port)
        with pytest.raises(ReadOnlyQueryError):  # routed through the sink (the file is locked)
            readonly_query(db, sql)
        with pytest.raises(ray.exceptions.RayTaskError) as err:  # straight to the actor
            live(sql)
        assert isinstance(err.value.cause, ReadOnlyQueryError), tries
    assert _snapshot(live) == before
    assert _no_connection(listener)

    # A fresh process finds the sink by the recorded address, not by "the latest cluster".
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_QUERY, str(db), "SELECT count(*) FROM spans"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.stdout.strip() == "[(3,)]", out.stderr[-2000:]
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_QUERY, str(db), BYPASSES[0][0]],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.stdout.startswith("ReadOnlyQueryError refused"), out.stderr[-2000:]

    close_sink(sink)
    assert not address_file(db).exists()
    assert _file_snapshot(db) == before
