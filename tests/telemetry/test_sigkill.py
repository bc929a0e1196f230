"""A writer killed with SIGKILL mid-run: the file reopens, committed spans are intact, and a
resumed export of the same batches duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from branchpoint.telemetry.store import DuckDBTraceStore

from .spans import BATCH, batch

_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from branchpoint.telemetry.store import DuckDBTraceStore
from spans import batch
store = DuckDBTraceStore(sys.argv[1])
k = 0
while True:
    store.write_spans(batch(k))
    print(k, flush=True)
    k += 1
"""


def test_sigkill_mid_write_loses_no_committed_span(tmp_path: Path) -> None:
    db = tmp_path / "killed.duckdb"
    here = str(Path(__file__).resolve().parent)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db), here], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    committed = -1
    for line in writer.stdout:
        committed = int(line)
        if committed >= 25:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL and committed >= 25

    store = DuckDBTraceStore(db)  # replays the WAL; must not raise
    counts = store.query(
        "SELECT count(*) AS n, count(DISTINCT span_id) AS d, max(CAST(split_part(run_id, '-', 2) AS INT)) AS last "
        "FROM spans"
    )[0]
    assert counts["n"] == counts["d"] and counts["n"] % BATCH == 0
    stored_batches = counts["n"] // BATCH
    assert stored_batches >= committed + 1  # every batch the writer saw committed is there
    per_run = store.query(
        "SELECT run_id, count(*) AS n FROM spans GROUP BY run_id HAVING n <> ?", [BATCH]
    )
    assert per_run == []  # no half-written batch
    intact = store.query(
        "SELECT count(*) AS n FROM spans WHERE length(attributes->>'$.\"branchpoint.content\"') = 300"
    )
    assert intact == [{"n": counts["n"]}]

    resumed = sum(store.write_spans(batch(k)) for k in range(stored_batches + 3))
    assert resumed == 3 * BATCH
    total = store.query("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans")[0]
    assert total == {"n": (stored_batches + 3) * BATCH, "d": (stored_batches + 3) * BATCH}
    store.close()
