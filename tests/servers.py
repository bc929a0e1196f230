"""Helpers for tests that start a server: wait until it answers, fail with its log if it dies."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest


def wait_until_serving(
    proc: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path, name: str
) -> None:
    """Poll `url` until it answers 200; fail the test if the server exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} not ready after {timeout_s:g} s")
        time.sleep(0.5)
