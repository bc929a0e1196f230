"""Helpers for the browser tests: headless Chromium from Debian's packages, the viewer started as
`branchpoint view` in a child process, full-page screenshots, and `branchpoint sql` as a user
would run it."""

from __future__ import annotations

import base64
import csv
import functools
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_process import branchpoint as run_branchpoint

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
START_TIMEOUT_S = 120.0


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A Selenium-driven headless Chromium with a fresh profile and network logging on."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "Chromium and its driver are missing: apt-get install -y chromium chromium-driver "
            "(.ci/run installs them)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, name: str) -> Path:
    """A full-page PNG in tests/view/artifacts/ (kept for people to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def requested_urls(driver: object) -> list[str]:
    """Every URL the browser requested since the last call (from the DevTools network log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


class Viewer:
    """`branchpoint view` in a child process; its URL (with the token) read from its output."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        argv = [sys.executable, "-m", "branchpoint", "view", "--db", str(db), "--port", "0"]
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*argv, *extra], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = self._wait_for_url()
        match = re.match(r"(http://[^/]+)/\?token=(\S+)", self.url)
        assert match, self.url
        self.base, self.token = match.group(1), match.group(2)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", self.log.read_text())
            if found:
                return found.group(0)
            if self.process.poll() is not None:
                pytest.fail(f"branchpoint view exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        pytest.fail(f"branchpoint view printed no URL in {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


branchpoint = functools.partial(run_branchpoint, timeout=600)  # the command as a user runs it


def sql(db: Path, query: str) -> list[dict[str, str]]:
    """Rows of `branchpoint sql --format csv` (values as text)."""
    done = branchpoint("sql", "--db", str(db), "--format", "csv", query)
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))
