"""SQL at scale: the README's trace queries over N real-shaped spans (issue 16: <= 1 s at 10M).

Run: .venv/bin/python -m benchmarks.sql_scale [--sizes 1000000,10000000] [--quick] [--workdir DIR]

How it measures. A template of real spans is recorded by `sim` runs of the math team in-process
(tracing on, the exporter and store the CLI uses); the template is then replicated inside DuckDB
with fresh span, trace and run ids (start times shifted per copy) until the database holds N
spans. Each query of the README's "Query your traces" section is timed on a read-only connection
with the locked configuration every query connection uses, its result materialised as an Arrow
table: one warm-up, then the median of 3. The "runs of a given model" query asks for `sim` (the
model the template ran), so it returns rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

import branchpoint as bp
from benchmarks.common import DATA, Figure, console, report_figures
from branchpoint.telemetry.store import DuckDBTraceStore, connect

GOAL_SECONDS = 1.0

QUERIES: dict[str, str] = {
    "tokens and seconds per run": """
SELECT run_id, model, status, input_tokens + output_tokens AS tokens, round(seconds, 2) AS seconds, n_steps
FROM runs ORDER BY started_at""",
    "agent before a failure": """
WITH last AS (
  SELECT s.run_id, s.agent, row_number() OVER (PARTITION BY s.run_id ORDER BY s.step DESC) AS back
  FROM steps s JOIN runs r USING (run_id) WHERE r.success = false)
SELECT agent, count(*) AS failures FROM last WHERE back = 2 GROUP BY agent ORDER BY failures DESC""",
    "slowest tool calls": """
SELECT run_id, step, tool, round(seconds * 1000, 1) AS ms, ok, left(input, 60) AS input
FROM tool_calls ORDER BY seconds DESC LIMIT 10""",
    "conversation of one run": """
SELECT format('[Step {}] {}: {}', step, agent, content) AS line
FROM steps WHERE run_id = '{run_id}' ORDER BY step""",
    "verifier accepted a wrong answer": """
SELECT r.run_id, r.final_answer, r.ground_truth, s.step AS verifier_step
FROM runs r JOIN steps s USING (run_id)
WHERE r.status = 'failed' AND s.agent = 'Verifier' AND s.kind = 'final'
ORDER BY r.started_at""",
    "runs of a given model": """
SELECT run_id, team, status, success, round(seconds, 1) AS seconds FROM runs WHERE model = 'sim' ORDER BY started_at""",
}

# Fresh ids per copy k: every id gets a ".k" suffix; start and end times move k seconds.
_REPLICATE = """
INSERT INTO spans SELECT * EXCLUDE (k) REPLACE (
    span_id || '.' || k AS span_id,
    trace_id || '.' || k AS trace_id,
    parent_span_id || '.' || k AS parent_span_id,
    run_id || '.' || k AS run_id,
    parent_run_id || '.' || k AS parent_run_id,
    start_time + to_seconds(k) AS start_time,
    end_time + to_seconds(k) AS end_time)
FROM template, range(?, ?) AS r(k)
"""


def record_template(db: Path, tasks: int) -> int:
    """Sim runs of the math team (half with an injected fault) traced into `db`; span count."""
    with bp.session(db=db, model="sim") as s:
        s.run(tasks=DATA / "gsm8k_test_first200.jsonl", limit=tasks, fault_rate=0.5)
    store = DuckDBTraceStore(db)
    try:
        return int(store.query("SELECT count(*) AS n FROM spans")[0]["n"])
    finally:
        store.close()


def build(db: Path, template: Path, n_spans: int) -> tuple[int, float]:
    """Fill `db` with copies of the template's spans up to about `n_spans`; (spans, seconds)."""
    DuckDBTraceStore(db).close()  # the current schema, views included
    started = time.perf_counter()
    # The benchmark's own connection may read the template file (query connections may not).
    raw = duckdb.connect(str(db))
    raw.execute(f"ATTACH '{template}' AS t (READ_ONLY)")
    raw.execute("CREATE TABLE template AS SELECT * FROM t.spans")
    raw.execute("DETACH t")
    per_copy = raw.execute("SELECT count(*) FROM template").fetchall()[0][0]
    copies = max(1, n_spans // per_copy)
    chunk = max(1, 1_000_000 // per_copy)
    for first in range(0, copies, chunk):
        raw.execute(_REPLICATE, [first, min(copies, first + chunk)])
    raw.execute("DROP TABLE template")
    raw.execute("CHECKPOINT")
    total = raw.execute("SELECT count(*) FROM spans").fetchall()[0][0]
    raw.close()
    return int(total), time.perf_counter() - started


def time_queries(db: Path, repeats: int = 3) -> dict[str, tuple[float, int]]:
    """Median seconds and row count of each README query on a locked read-only connection."""
    con = connect(db, read_only=True)
    try:
        run_id = con.execute(
            "SELECT run_id FROM runs WHERE status = 'failed' ORDER BY run_id LIMIT 1"
        ).fetchall()[0][0]
        results = {}
        for name, sql in QUERIES.items():
            query = sql.replace("{run_id}", run_id)
            rows = con.sql(query).to_arrow_table().num_rows  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                con.sql(query).to_arrow_table()
                times.append(time.perf_counter() - started)
            results[name] = (statistics.median(times), rows)
        return results
    finally:
        con.close()


def main() -> None:
    """Build each size and print the query times against the goal."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000", help="span counts, comma-separated")
    parser.add_argument("--quick", action="store_true", help="one size of 200,000 spans")
    parser.add_argument("--template-runs", type=int, default=60)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the databases here")
    args = parser.parse_args()
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="sql-scale-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        template = work / "template.duckdb"
        template.unlink(missing_ok=True)
        per_copy = record_template(template, args.template_runs)
        console.print(f"template: {per_copy} spans from {args.template_runs} sim runs")
        table: dict[int, dict[str, tuple[float, int]]] = {}
        for size in sizes:
            db = work / f"spans-{size}.duckdb"
            db.unlink(missing_ok=True)
            total, seconds = build(db, template, size)
            console.print(
                f"built {total:,} spans in {seconds:.1f} s ({db.stat().st_size / 2**20:,.0f} MiB)"
            )
            table[size] = time_queries(db)
        _print(table)


def _print(table: dict[int, dict[str, tuple[float, int]]]) -> None:
    sizes = sorted(table)
    header = f"{'query':<36}" + "".join(f"{f'{s:,} spans':>28}" for s in sizes) + f"{'goal':>10}"
    console.print(header, markup=False)
    worst = 0.0
    for name in QUERIES:
        cells = ""
        for size in sizes:
            seconds, rows = table[size][name]
            worst = max(worst, seconds) if size == sizes[-1] else worst
            cells += f"{f'{seconds * 1000:,.0f} ms ({rows:,} rows)':>28}"
        console.print(f"{name:<36}{cells}{'<= 1 s':>10}", markup=False)
    report_figures(
        "sql_scale",
        [
            Figure(
                f"{name}, {size:,} spans (s)",
                table[size][name][0],
                goal="≤ 1" if size == sizes[-1] else "",
                met=table[size][name][0] <= GOAL_SECONDS if size == sizes[-1] else None,
                note=f"{table[size][name][1]:,} rows",
            )
            for size in sizes
            for name in QUERIES
        ]
        + [Figure(f"slowest README query at {sizes[-1]:,} spans (s)", worst, "≤ 1", worst <= 1)],
    )


if __name__ == "__main__":
    main()
