"""The `branchpoint` command run as a user runs it (a fresh `python -m branchpoint` process), and
the shape every refused input must have: exit code 2, one `error:` line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def branchpoint(
    *args: str,
    cwd: Path | None = None,
    tmpdir: Path | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the command; `tmpdir` becomes its TMPDIR (so a leftover temporary file shows)."""
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    return subprocess.run(
        [sys.executable, "-m", "branchpoint", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The single error line of a refused command, which must hold every `expected` text."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
