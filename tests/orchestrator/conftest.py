"""Fixtures for orchestrator tests: a throwaway real PostgreSQL server on 127.0.0.1.

The server comes from Debian's `postgresql` package (installed by `.ci/run`). It runs as
the `postgres` OS user when the tests run as root (initdb refuses root), in a temporary data directory, on a
free port, and it is stopped and deleted at the end of the session. Missing binaries fail
the tests that need the server: a skip would hide an untested Postgres path.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DATABASE = "branchpoint_test"
STARTUP_TIMEOUT_S = 30.0


def _postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL bin directory holding `initdb` and `postgres`."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    pytest.fail(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
        "install them with `apt-get install -y postgresql` (the Postgres checkpointer tests "
        "need a real server)."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user(workdir: Path) -> dict[str, object]:
    """Popen arguments running a child as the `postgres` OS user when we are root.

    Switching user in the child (rather than through `runuser`) keeps signals going straight
    to the server process.
    """
    if os.geteuid() == 0:
        return {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": workdir}
    return {"cwd": workdir}


def _wait_ready(bin_dir: Path, port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"PostgreSQL exited at startup: {log.read_text(errors='replace')}")
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"PostgreSQL did not accept connections in {STARTUP_TIMEOUT_S}s: {log}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh database on a throwaway PostgreSQL server (trust auth, 127.0.0.1 only)."""
    bin_dir = _postgres_bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="branchpoint-pg-"))
    data_dir = workdir / "data"
    log = workdir / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(workdir, user="postgres", group="postgres")
    as_postgres = _as_postgres_user(workdir)
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ],
        capture_output=True,
        check=False,
        **as_postgres,  # type: ignore[call-overload]
    )
    if initdb.returncode != 0:
        pytest.fail(f"initdb failed: {initdb.stderr.decode(errors='replace')}")
    port = _free_port()
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data_dir),
                "-k",
                str(workdir),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-c",
                "fsync=off",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **as_postgres,  # type: ignore[call-overload]
        )
    try:
        _wait_ready(bin_dir, port, server, log)
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                DATABASE,
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
