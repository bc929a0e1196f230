"""Every benchmark at a quick size, one after the other, and one table of all their figures.

Each benchmark runs as its own process (`python -m benchmarks.NAME --quick`, or `--full` sizes)
and hands its figures back through the JSON-lines file named by BRANCHPOINT_BENCH_JSON
(`benchmarks.common.report_figures`). A script that does not write that file still counts: its
printed lines of the form `label  value  <= goal` (or `>=`) are read as figures. A benchmark that
fails, or is missing from this checkout, is a row saying so. The table, with the date, the
machine's load and the commands, replaces the generated section at the top of
`benchmarks/RESULTS.md`; the hand-written sections below it are kept.

Usage: .venv/bin/python -m benchmarks.run_all [--full] [--only peers,bench_fork] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import BENCH_JSON_ENV, REPO, console

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
TIMEOUT_S = 3600


@dataclass(frozen=True)
class Bench:
    """One benchmark script and how run_all calls it."""

    name: str
    issue_goals: str  # which goals it reports
    quick: tuple[str, ...] = ("--quick",)


BENCHES = (
    Bench("peers", "per-step cost, O(1) in run length, in-process vs autogen"),
    Bench("ray_calls", "what a Ray actor call costs before any agent work"),
    Bench("step_size", "what a step owes to the size of the plan it carries"),
    Bench("step_parts", "where a step's time goes beside the floor, tracing on and off"),
    Bench("cli_startup", "commands that run no agent: < 1 s, no Ray"),
    Bench("bench_fork", "fork cost flat in k, checkpoint growth linear"),
    Bench("bench_sweep", "sweep scaling ≥ 30× at concurrency 128"),
    Bench("bench_telemetry", "ingestion, tracing share of a step"),
    Bench("sql_scale", "SQL over many spans"),
    Bench("bench_view", "the viewer opens a 1,000-step run", quick=("--reps", "2")),
)
_GOAL_LINE = re.compile(
    r"^\s*(?P<label>\S.*?)\s{2,}(?P<value>-?[\d,]+(?:\.\d+)?)\s+(?P<op><=|>=|≤|≥)\s*(?P<goal>[\d,.]+)\s*$"
)


_GOAL_SENTENCE = re.compile(
    r"^\s*(?P<label>\S.*?)\s(?P<value>-?[\d,]+(?:\.\d+)?)\s*[a-z/%]*\s*"
    r"\((?P<op><=|>=|≤|≥)\s*(?P<goal>[\d,.]+)[^:)]*:\s*(?:met|missed|MISSED)\)\s*$"
)


def figures_from_text(bench: str, text: str) -> list[dict[str, object]]:
    """Figures printed as `label  value  <= goal` lines, or as `label value (<= goal: met)`
    sentences (for scripts that write no JSON)."""
    out: list[dict[str, object]] = []
    for line in text.splitlines():
        match = _GOAL_LINE.match(line) or _GOAL_SENTENCE.match(line)
        if match is None:
            continue
        value = float(match["value"].replace(",", ""))
        goal = float(match["goal"].replace(",", ""))
        op = {"<=": "≤", ">=": "≥"}.get(match["op"], match["op"])
        met = value <= goal if op == "≤" else value >= goal
        out.append(
            {"bench": bench, "name": match["label"], "value": value,
             "goal": f"{op} {match['goal']}", "met": met, "note": ""}
        )  # fmt: skip
    return out


def run_bench(bench: Bench, full: bool, log_dir: Path) -> tuple[list[dict[str, object]], str]:
    """(figures, status) of one benchmark run as a subprocess."""
    script = REPO / "benchmarks" / f"{bench.name}.py"
    if not script.exists():
        return [], "not in this checkout"
    sink = log_dir / f"{bench.name}.jsonl"
    log = log_dir / f"{bench.name}.log"
    argv = [sys.executable, "-m", f"benchmarks.{bench.name}", *([] if full else bench.quick)]
    env = {**os.environ, BENCH_JSON_ENV: str(sink)}
    console.print(f"[bold]{bench.name}[/bold]: {' '.join(argv[1:])}")
    started = time.perf_counter()
    try:
        with log.open("w") as out:
            done = subprocess.run(
                argv,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT_S,
                check=False,
            )
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = -1
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    figures = (
        [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
        if sink.exists()
        else figures_from_text(bench.name, text)
    )
    status = "ok" if code == 0 else "timed out" if code == -1 else f"failed (exit {code})"
    console.print(f"  {status} in {seconds:.0f} s, {len(figures)} figures (log: {log})")
    if code != 0:
        console.print(text[-1500:], markup=False, highlight=False)
    return figures, f"{status}, {seconds:.0f} s"


def fmt_value(value: object) -> str:
    """A figure's value as shown in the table."""
    if not isinstance(value, int | float):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def table(
    rows: list[tuple[Bench, list[dict[str, object]], str]],
    started: datetime,
    loads: list[float],
    earlier: list[str],
) -> str:
    """The generated section of RESULTS.md."""
    lines = [
        BEGIN,
        "## All benchmarks, quick sizes (generated by `benchmarks/run_all.py`)",
        "",
        (
            f"Run {started:%Y-%m-%d %H:%M} UTC with `.venv/bin/python -m benchmarks.run_all` on "
            f"this 2-core machine, load average {min(loads):.1f}–{max(loads):.1f} during the run "
            "(quick sizes: a few seconds per arm, so figures move by tens of percent between "
            "runs; each ratio is measured side by side within one script)."
        ),
        "",
        "| benchmark | figure | value | goal | met |",
        "|---|---|---:|---|---|",
    ]
    for bench, figures, status in rows:
        if not figures:
            lines.append(f"| {bench.name} | ({bench.issue_goals}) | — | — | {status} |")
        for f in figures:
            met = {True: "met", False: "**missed**", None: ""}[f.get("met")]  # type: ignore[index]
            note = f" ({f['note']})" if f.get("note") else ""
            lines.append(
                f"| {bench.name} | {f['name']}{note} | {fmt_value(f['value'])} | "
                f"{f.get('goal') or ''} | {met} |"
            )
    if earlier:
        lines.append("| *earlier run of run_all, kept:* | | | | |")
        lines += earlier
    lines += ["", END]
    return "\n".join(lines)


def kept_rows(names: set[str]) -> list[str]:
    """The table rows of the current generated section for benchmarks other than `names`
    (`--only` re-measures some benchmarks and keeps the others' last figures)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if BEGIN not in text:
        return []
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and " | " in line]
    return [r for r in rows[2:] if r.split(" | ")[0].removeprefix("| ") not in names]


def write_results(section: str) -> None:
    """Replace the generated section of RESULTS.md (or put it first), keeping the rest."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n{section}\n{body}"
    RESULTS.write_text(text)


def main() -> None:
    """Run the benchmarks, print the table, write it to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="each script's default sizes")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    chosen = [b for b in BENCHES if not args.only or b.name in args.only.split(",")]
    started, loads = datetime.now(UTC), [os.getloadavg()[0]]
    rows = []
    logs = Path(tempfile.mkdtemp(prefix="bench-all-"))  # kept: each benchmark's full output
    for bench in chosen:
        figures, status = run_bench(bench, args.full, logs)
        rows.append((bench, figures, status))
        loads.append(os.getloadavg()[0])
    earlier = kept_rows({b.name for b in chosen}) if args.only else []
    section = table(rows, started, loads, earlier)
    console.print(section, markup=False, highlight=False)
    if not args.no_write:
        write_results(section)
        console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
