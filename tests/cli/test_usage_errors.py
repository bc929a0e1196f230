"""A bad flag, value or command is one line on stderr and exit code 2, never a box or a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (("run", "--limit", "-1"), "--limit"),
    (("debug", "--failed", "--repeats", "0"), "--repeats"),
    (("nope",), "No such command"),
    (("fork",), "Missing argument"),
]


@pytest.mark.parametrize(("args", "names"), CASES)
def test_usage_error_is_one_line_and_exit_2(args: tuple[str, ...], names: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "branchpoint", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and names in lines[0], result.stderr
    assert "--help" in lines[0]


def test_methods_help_lists_every_registered_method() -> None:
    from branchpoint.cli.common import METHOD_NAMES
    from branchpoint.interventions.attribution import registered_methods

    assert METHOD_NAMES.split(", ") == list(registered_methods())
    # A fresh process that never imports the pipeline still knows `ldb` (it registers itself
    # in another module).
    code = (
        "from branchpoint.cli.common import parse_methods\n"
        "assert parse_methods('ldb,dover') == ('ldb', 'dover')\n"
        "import sys; assert 'branchpoint.interventions.pipeline' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [("debug", "--failed"), ("debug", "run-x"), ("fork", "run-x", "--step", "1"),
     ("replay", "run-x"), ("sweep",)],
)  # fmt: skip
def test_commands_on_recorded_runs_refuse_a_missing_database(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    db = tmp_path / "typo.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "branchpoint", *args, "--db", str(db)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        == f"error: no trace database at {db}; run a team first or pass --db with the right path"
    )
    assert list(tmp_path.iterdir()) == []  # no empty database, no checkpoint file


def test_a_progress_task_without_a_status_renders() -> None:
    """Benchmarks and commands add tasks with or without a `status` field (bench_real died here)."""
    from branchpoint.cli.common import console, progress_bar

    with console.capture() as captured, progress_bar() as bar:
        plain = bar.add_task("plain", total=2)
        bar.add_task("with status", total=None, status="running 1")
        bar.update(plain, advance=1)
    assert "plain" in captured.get() and "running 1" in captured.get()


def test_progress_in_a_log_is_plain_lines_at_twentieths_and_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Output that is not a terminal (a CI log, nohup) gets lines while the work runs, not one
    bar when it ends: at the start, every twentieth of the total, after LOG_EVERY_S without one,
    and once at the end."""
    from branchpoint.cli import common

    ticks = iter(range(100_000))
    monkeypatch.setattr(common.console, "get_time", lambda: next(ticks) / 10)  # 0.1 s a reading
    with common.console.capture() as captured, common.progress_bar() as bar:
        assert isinstance(bar, common.LogProgress)
        job = bar.add_task("forks", total=100, status="")
        for i in range(100):
            bar.update(job, advance=1, status=f"succeeded {i + 1}")
        bar.update(job, status="done")  # finished: no second final line
        counted = bar.add_task("counted", total=None)
        for _ in range(50):
            bar.update(counted, advance=1)  # no total, under a minute: no line but the first
        slow = bar.add_task("debug", total=1000)
        bar.LOG_EVERY_S = 0.05  # every update is "a while" later on this clock
        bar.update(slow, advance=1)
    lines = captured.get().splitlines()
    forks = [line for line in lines if line.startswith("forks:")]
    assert forks[0].startswith("forks: 0/100") and forks[-1].startswith(
        "forks: 100/100 succeeded 100"
    )
    assert len(forks) == 21  # the start and each 5 of 100
    assert [line for line in lines if line.startswith("counted:")] == ["counted: 0  (0:00)"]
    assert [line.split(" (")[0] for line in lines if line.startswith("debug:")] == [
        "debug: 0/1000 ",
        "debug: 1/1000 ",
    ]
