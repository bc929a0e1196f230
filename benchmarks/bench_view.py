"""How fast the viewer opens a long run: a 1,000-step run, its fork at step 500, 300 other runs.

The database is written span by span in the shapes the orchestrator records (a step span, an LLM
call with its prompt and completion per step, a tool call every fifth step), so the viewer reads
the same rows as for a real run. The viewer runs in-process on a free port (`make_server`); each
page is fetched over HTTP with the session cookie, `--reps` times, after one cold fetch.

    .venv/bin/python -m benchmarks.bench_view            # --steps 1000 --reps 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from benchmarks.common import Figure, console, median, report_figures, timed
from branchpoint.telemetry import attributes as A
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.view.report import write_report
from branchpoint.view.server import COOKIE, make_server

T0 = datetime(2026, 1, 1)
GOAL_S = 2.0


def _span(span_id: str, kind: str, run_id: str, step: int | None, attrs: dict[str, Any],
          start: datetime) -> dict[str, Any]:  # fmt: skip
    return {
        "span_id": span_id, "trace_id": f"trace-{run_id}", "parent_span_id": None,
        "name": kind, "kind": kind, "otel_kind": "INTERNAL", "run_id": run_id, "step": step,
        "start_time": start, "end_time": start + timedelta(milliseconds=50),
        "duration_ms": 50.0, "status_code": "OK", "status_message": None,
        "attributes": json.dumps(attrs), "events": "[]", "links": "[]", "resource": "{}",
        "scope": "bench",
    }  # fmt: skip


def run_spans(run_id: str, first: int, n_steps: int, **lineage: Any) -> list[dict[str, Any]]:
    """A run span and `n_steps` step spans from step `first`, each with an LLM call (a 3 kB
    prompt) and a tool call every fifth step."""
    start = T0 + timedelta(minutes=len(run_id))
    task = {"task_id": "long", "question": "Count to 1000.", "answer": "1000"}
    spans = [
        _span(f"run-{run_id}", "run", run_id, None, {
            A.KIND: "run", A.RUN_ID: run_id, A.TEAM: "math", A.TASK_ID: "long",
            A.TASK: json.dumps(task), A.REQUEST_MODEL: "sim", A.STATUS: "failed",
            A.SUCCESS: False, A.INPUT_TOKENS: 10 * n_steps, A.OUTPUT_TOKENS: 4 * n_steps,
            **lineage,
        }, start)
    ]  # fmt: skip
    for k in range(first, first + n_steps):
        at = start + timedelta(seconds=k)
        content = f"{k}+1={k + 1}. " + "The running total is carried to the next step. " * 3
        spans.append(_span(f"step-{run_id}-{k}", "step", run_id, k, {
            A.KIND: "step", A.RUN_ID: run_id, A.STEP: k, A.AGENT_NAME: "Solver",
            A.STEP_KIND: "message", A.CONTENT: content, A.CHECKPOINT_ID: f"ck-{run_id}-{k}",
            A.INPUT_TOKENS: 10, A.OUTPUT_TOKENS: 4,
        }, at))  # fmt: skip
        spans.append(_span(f"chat-{run_id}-{k}", "chat", run_id, k, {
            A.KIND: "chat", A.RUN_ID: run_id, A.STEP: k, A.AGENT_NAME: "Solver",
            A.REQUEST_MODEL: "sim", A.PROMPT: "earlier steps... " * 180, A.COMPLETION: content,
            A.INPUT_TOKENS: 10, A.OUTPUT_TOKENS: 4,
        }, at))  # fmt: skip
        if k % 5 == 0:
            spans.append(_span(f"tool-{run_id}-{k}", "tool", run_id, k, {
                A.KIND: "tool", A.RUN_ID: run_id, A.STEP: k, A.TOOL_NAME: "python",
                A.TOOL_INPUT: f"print({k}+1)", A.TOOL_OUTPUT: str(k + 1), A.TOOL_OK: True,
            }, at))  # fmt: skip
    return spans


def build(db: Path, n_steps: int, n_runs: int) -> None:
    """The long run, its fork half-way, and `n_runs` short runs."""
    store = DuckDBTraceStore(db)
    try:
        store.write_spans(run_spans("long", 0, n_steps))
        fork = {A.PARENT_RUN_ID: "long", A.FORK_STEP: n_steps // 2, A.INTERVENTION_ID: "iv",
                "branchpoint.intervention": json.dumps({"kind": "resample", "step": n_steps // 2})}  # fmt: skip
        store.write_spans(run_spans("long-fork", n_steps // 2, n_steps - n_steps // 2, **fork))
        for i in range(n_runs):
            store.write_spans(run_spans(f"short-{i}", 0, 5))
    finally:
        store.close()


def measure(base: str, token: str, path: str, reps: int) -> tuple[float, float, int]:
    """(cold seconds, median warm seconds, bytes) of GET `path`."""
    with httpx.Client(base_url=base, cookies={COOKIE: token}, timeout=120) as client:
        cold, first = timed(lambda: client.get(path))
        assert first.status_code == 200, (path, first.status_code, first.text[:500])
        warm = [timed(lambda: client.get(path))[0] for _ in range(reps)]
    return cold, median(warm), len(first.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        db = Path(tmp) / "traces.duckdb"
        build_s, _ = timed(lambda: build(db, args.steps, args.runs))
        console.print(
            f"database: {args.steps}-step run + fork + {args.runs} runs in {build_s:.1f} s"
        )
        server, app = make_server(db, 0, allow_forks=False)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        pages = {
            "runs list": "/",
            f"run, {args.steps} steps: page 1": "/run/long",
            f"run, {args.steps} steps: last page": f"/run/long?page={args.steps // 100}",
            "fork tree": "/run/long/tree",
            "fork beside parent (from step 500)": "/compare/long-fork",
            "debugging": "/run/long/debug",
        }
        table = Table(title=f"viewer pages (median of {args.reps} warm fetches)")
        for col in ("page", "cold s", "warm s", "kB"):
            table.add_column(col, justify="right" if col != "page" else "left")
        figures = []
        for name, path in pages.items():
            cold, warm, size = measure(base, app.token, path, args.reps)
            table.add_row(name, f"{cold:.2f}", f"{warm:.2f}", f"{size / 1000:.0f}")
            figures.append(Figure(f"{name} (s)", warm))
        report_s, _ = timed(lambda: write_report(db, Path(tmp) / "report.html", run_id="long"))
        size = (Path(tmp) / "report.html").stat().st_size
        table.add_row(
            f"report of the {args.steps}-step run (file)",
            f"{report_s:.2f}",
            "",
            f"{size / 1000:.0f}",
        )
        server.shutdown()
        server.server_close()
        app.reader.close()
    console.print(table)
    opened = max(figures[1].value or 0, figures[2].value or 0)
    figures.append(
        Figure("run page opens (s)", opened, goal=f"< {GOAL_S:g} s", met=opened < GOAL_S)
    )
    report_figures("view", figures)


if __name__ == "__main__":
    main()
