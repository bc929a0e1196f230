"""Record a failed `code` run and the 1.5B judge's `ldb` replies into a JSON fixture.

    .venv/bin/python tests/interventions/record_ldb_fixture.py DB RUN_ID

DB is a trace database holding a failed code-team run (e.g. from benchmarks/bench_real.py, not
in use by another process). The run, its steps and every judge reply are written to
fixtures/ldb_code_run.json; `test_ldb_method.py` replays them without any model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from branchpoint.agents.backends import make_chat_client, parse_model_spec
from branchpoint.interventions.judge import ChatClientJudge
from branchpoint.interventions.ldb import ldb_hypothesis
from branchpoint.orchestrator.runs import load_run, load_steps
from branchpoint.settings import Settings
from branchpoint.telemetry.store import DuckDBTraceStore

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ldb_code_run.json"
JUDGE = "local:coder-1.5b"


class CapturingJudge:
    """A judge that remembers every reply it gave."""

    def __init__(self, inner: ChatClientJudge) -> None:
        self.inner, self.replies = inner, []

    def complete(self, system: str, user: str) -> str:
        reply = self.inner.complete(system, user)
        self.replies.append(reply)
        return reply


def main(db: str, run_id: str) -> None:
    store = DuckDBTraceStore(db)
    run = load_run(store, run_id)
    steps = load_steps(store, run)
    judge = CapturingJudge(ChatClientJudge(make_chat_client(parse_model_spec(JUDGE), Settings())))
    result = ldb_hypothesis(run, steps, judge)
    FIXTURE.write_text(
        json.dumps(
            {
                "judge": JUDGE,
                "run": run.model_dump(mode="json"),
                "steps": [s.model_dump(mode="json") for s in steps],
                "judge_replies": judge.replies,
            },
            indent=1,
        )
    )
    print(result.hypotheses, result.failures)


if __name__ == "__main__":
    main(*sys.argv[1:3])
