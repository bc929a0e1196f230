"""Reading a trace database that a run may be writing: from a private copy, never the live file.

DuckDB lets one process write a file or many read it, never both, and a writer that starts while
any reader has the file open fails ("Could not set lock on file"). A viewer left open beside a
terminal would make every `branchpoint run` started at the wrong moment fail. So the viewer never
opens the live file: it copies the database and its write-ahead log into a private folder and
queries the copy, each statement vetted by `read_statements` (the `branchpoint sql` vetting),
on one read-only connection held per copy with external access and extension loading off.
Holding it keeps DuckDB's buffer pool warm: a connection per query re-reads the tables every
time (a 1,000-step run's page: 2.3 s that way, 0.3-0.8 s on a held connection, measured).

The copy is refreshed when the file changed, at most every REFRESH_SECONDS. A live writer only
appends to the WAL between checkpoints, and DuckDB replays a WAL up to its last complete entry;
a copy that a checkpoint tore (the main file changed while it was copied) is taken again.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from branchpoint.errors import DatabaseBusyError, first_line
from branchpoint.telemetry.query import MissingDatabaseError, query_error
from branchpoint.telemetry.readonly import read_statements
from branchpoint.telemetry.store import TraceDatabaseError, connect, header_problem, not_a_trace_db

REFRESH_SECONDS = 1.0
ATTEMPTS = 5

Stamp = tuple[int, int, int, int]


@dataclass
class Snapshot:
    """One private copy of the database: where it is, what it copied, who is reading it."""

    path: Path
    stamp: Stamp
    taken_at: datetime
    connection: duckdb.DuckDBPyConnection | None = None
    readers: int = 0

    def open(self) -> None:
        """The copy's read-only connection (the copy is checked by opening it), configured as
        every trace database connection is (`store.LOCKED_CONFIG`: no files, no network, no
        extensions)."""
        self.connection = connect(self.path, read_only=True)

    def remove(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        for file in (self.path, wal_of(self.path)):
            file.unlink(missing_ok=True)


def wal_of(path: Path) -> Path:
    """DuckDB's write-ahead log beside a database file."""
    return path.with_name(path.name + ".wal")


class TraceReader:
    """A `queries.Reader` over a trace database through snapshots; safe beside a live writer."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._stamp()  # a missing file is an error now, not at the first page
        self._dir = Path(tempfile.mkdtemp(prefix="branchpoint-view-"))
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._retired: list[Snapshot] = []
        self._checked = 0.0
        self._taken = 0
        try:
            self._check_first_snapshot()  # a file that is no trace database: refused now too
        except BaseException:
            self.close()
            raise

    def _not_trace_db(self, why: str) -> TraceDatabaseError:
        return not_a_trace_db(self.db_path, why)

    def _check_first_snapshot(self) -> None:
        snapshot = self.acquire()
        try:
            assert snapshot.connection is not None
            found = snapshot.connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_meta'"
            ).fetchall()
        finally:
            self.release(snapshot)
        if not found[0][0]:
            raise self._not_trace_db("a DuckDB file without branchpoint's tables")

    def _stamp(self) -> Stamp:
        try:
            db = os.stat(self.db_path)
        except FileNotFoundError:
            raise MissingDatabaseError(
                f"no trace database at {self.db_path}; run a team first or pass --db with the "
                "right path"
            ) from None
        except OSError as exc:
            raise self._unreadable(exc) from None
        if stat.S_ISDIR(db.st_mode):
            raise self._not_trace_db("it is a folder")
        if not stat.S_ISREG(db.st_mode):
            raise self._not_trace_db("it is not a regular file")
        try:
            wal = os.stat(wal_of(self.db_path))
            return db.st_mtime_ns, db.st_size, wal.st_mtime_ns, wal.st_size
        except FileNotFoundError:
            return db.st_mtime_ns, db.st_size, 0, -1

    def _unreadable(self, exc: OSError) -> TraceDatabaseError:
        return TraceDatabaseError(
            f"cannot read {self.db_path} ({exc.strerror or first_line(exc)}); check the --db path"
        )

    def _copy_files(self, target: Path) -> None:
        try:
            shutil.copyfile(self.db_path, target)
            try:
                shutil.copyfile(wal_of(self.db_path), wal_of(target))
            except FileNotFoundError:
                pass  # no WAL (or a checkpoint just folded it in: the stamp check sees that)
        except OSError as exc:
            raise self._unreadable(exc) from None

    def _copy(self, stamp: Stamp) -> Snapshot:
        unchanged_failures: list[str] = []
        for _ in range(ATTEMPTS):
            self._taken += 1
            target = self._dir / f"snapshot-{self._taken}.duckdb"
            copy = Snapshot(target, stamp, datetime.now())
            try:
                self._copy_files(target)
                after = self._stamp()
                if after[:2] == stamp[:2]:
                    try:
                        copy.open()
                        return copy
                    except duckdb.Error as exc:
                        # A torn copy (take it again), or a file that is no database at all.
                        unchanged_failures.append(
                            first_line(exc).replace(str(target), str(self.db_path))
                        )
                        why = header_problem(target)
                        if why is not None:
                            raise self._not_trace_db(why) from None
            except BaseException:
                copy.remove()
                raise
            copy.remove()
            stamp = after
        if len(unchanged_failures) == ATTEMPTS:  # the file held still and never opened
            raise self._not_trace_db(unchanged_failures[-1])
        raise DatabaseBusyError(
            f"{self.db_path} kept changing while it was copied ({ATTEMPTS} tries); reload the page"
        )

    def acquire(self) -> Snapshot:
        """A current snapshot, marked as being read until `release`."""
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._checked >= REFRESH_SECONDS:
                self._checked = now
                stamp = self._stamp()
                if self._current is None or stamp != self._current.stamp:
                    fresh = self._copy(stamp)
                    if self._current is not None:
                        self._retired.append(self._current)
                    self._current = fresh
            self._current.readers += 1
            self._remove_unread()
            return self._current

    def release(self, snapshot: Snapshot) -> None:
        """A query on `snapshot` finished."""
        with self._lock:
            snapshot.readers -= 1
            self._remove_unread()

    def _remove_unread(self) -> None:
        for old in [s for s in self._retired if s.readers == 0]:
            old.remove()
            self._retired.remove(old)

    @property
    def taken_at(self) -> datetime | None:
        """When the snapshot in use was copied."""
        return self._current.taken_at if self._current else None

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a vetted read-only query on the latest snapshot, as dicts."""
        [statement] = read_statements(sql)
        snapshot = self.acquire()
        try:
            assert snapshot.connection is not None
            cursor = snapshot.connection.cursor()
            try:
                cursor.execute(statement, params or [])
                columns = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except duckdb.Error as exc:
            raise query_error(self.db_path, exc) from None
        finally:
            self.release(snapshot)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def close(self) -> None:
        """Close and remove every snapshot."""
        with self._lock:
            for snapshot in [*self._retired, *([self._current] if self._current else [])]:
                snapshot.remove()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._current, self._retired = None, []
