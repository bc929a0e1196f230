"""`export_otlp` to a real collector (Arize Phoenix on 127.0.0.1), read back through its REST API:
same span count, same parent links."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import wait_until_serving

from branchpoint.telemetry.export import export_otlp
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import flush, setup_tracing

from .spans import emit_run

pytestmark = pytest.mark.phoenix

STARTUP_TIMEOUT_S = (
    300.0  # Phoenix starts in ~30 s on an idle 2-core machine, far slower under load
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server on free 127.0.0.1 ports with a throwaway working dir; yields its URL."""
    workdir = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(
            proc, f"{url}/healthz", STARTUP_TIMEOUT_S, workdir / "server.log", "phoenix"
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _phoenix_spans(url: str, trace_id: str, expected: int) -> list[dict[str, object]]:
    """The spans Phoenix holds for a trace, polling while its bulk inserter catches up."""
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(
            f"{url}/v1/projects/default/spans",
            params={"trace_id": trace_id, "limit": 1000},
            timeout=10,
        ).json()["data"]
        if len(got) >= expected or time.monotonic() > deadline:
            return list(got)
        time.sleep(0.5)


def test_export_otlp_to_phoenix_keeps_count_and_parent_links(phoenix: str, tmp_path: Path) -> None:
    db = tmp_path / "traces.duckdb"
    store = DuckDBTraceStore(db)
    provider = setup_tracing(store, "phoenix-test")
    emit_run(provider, "r1")
    emit_run(provider, "r2")
    flush(provider)
    provider.shutdown()
    ours = store.query(
        "SELECT span_id, parent_span_id, trace_id, name FROM spans WHERE run_id = 'r1'"
    )
    store.close()

    assert export_otlp(db, phoenix, run_id="r1") == len(ours) == 8
    trace_id = ours[0]["trace_id"]
    theirs = _phoenix_spans(phoenix, str(trace_id), len(ours))
    assert len(theirs) == len(ours)
    assert {(s["context"]["span_id"], s["parent_id"], s["name"]) for s in theirs} == {  # type: ignore[index]
        (o["span_id"], o["parent_span_id"], o["name"]) for o in ours
    }
