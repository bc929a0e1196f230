"""A local Ray started by branchpoint serves no unauthenticated Prometheus metrics endpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.ray

# Starts Ray as branchpoint does, prints the cluster's listening TCP ports, waits for stdin.
_CLUSTER = """
import json, sys, psutil
from branchpoint.orchestrator.session import start_ray
start_ray(None)
me = psutil.Process()
pids = {p.pid for p in me.children(recursive=True)} | {me.pid}
ports = sorted({c.laddr.port for c in psutil.net_connections("inet")
                if c.status == "LISTEN" and c.pid in pids})
print(json.dumps(ports), flush=True)
sys.stdin.read()
"""


def _serves_ray_metrics(port: int) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and "ray_" in response.text


def test_no_listening_port_serves_ray_metrics() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        assert ports, "the cluster listens on no port at all?"
        assert [p for p in ports if _serves_ray_metrics(p)] == []
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=120)
