"""The judge-driven DoVer functions replayed from recorded outputs of the real local model.

The fixture was recorded by `record_fixtures.py` (Qwen2.5-Coder-0.5B via llama.cpp); replay
needs no model, and a prompt that changed since recording fails with ReplayMissError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
from dover_samples import (
    RECORDED_MODEL,
    RECORDED_WHOWHEN,
    RECORDINGS,
    WHOWHEN,
    math_run,
    strip_json,
)
from shared_data import SHARED_DATA, needs_shared_data

from branchpoint.agents.recording import JsonlRecordStore, RecordingClient
from branchpoint.interventions.attribution import (
    AttributionResult,
    all_at_once,
    binary_search,
    dover_propose,
    step_by_step,
)
from branchpoint.interventions.judge import ChatClientJudge
from branchpoint.interventions.milestones import (
    MAX_JUDGED_MILESTONES,
    judge_achievement,
    judge_milestones,
)
from branchpoint.interventions.segment import segment_by_kinds, segment_with_judge
from branchpoint.interventions.whowhen import load_whowhen
from branchpoint.model import Run, Step


@contextmanager
def _replaying(path: Path) -> Iterator[ChatClientJudge]:
    judge = ChatClientJudge(RecordingClient(None, JsonlRecordStore(path), RECORDED_MODEL, "replay"))
    try:
        yield judge
    finally:
        judge.close()


@pytest.fixture(scope="module")
def judge() -> Iterator[ChatClientJudge]:
    with _replaying(RECORDINGS) as replaying:
        yield replaying


def _loaded_runs() -> list[tuple[Run, list[Step]]]:
    """The math run (built here) and, when the shared data sets are there, the recorded logs."""
    if not SHARED_DATA.is_dir():
        return [math_run()]
    logs = [load_whowhen(WHOWHEN / name) for name in RECORDED_WHOWHEN]
    return [math_run(), *[(log.run, list(log.steps)) for log in logs]]


LOADED = _loaded_runs()
# Without ../shared/data the Who&When cases show up as skipped, with the reason, and the math run
# and the retry test still run (a module-level skip hid them all).
RUNS = [pytest.param(run, steps, id=run.run_id) for run, steps in LOADED] + (
    []
    if SHARED_DATA.is_dir()
    else [pytest.param(None, None, id="whowhen", marks=needs_shared_data)]
)


def _check(result: AttributionResult, run: Run, steps: list[Step], method: str) -> None:
    indices = {s.index for s in steps}
    agents = {s.agent for s in steps}
    for hyp in result.hypotheses:
        assert hyp.method == method and hyp.run_id == run.run_id
        assert hyp.step in indices and hyp.agent in agents
    assert result.hypotheses or result.failures, "a method without a hypothesis must say why"


@pytest.mark.parametrize(("run", "steps"), RUNS)
def test_baselines_replay_to_valid_hypotheses(
    judge: ChatClientJudge, run: Run, steps: list[Step]
) -> None:
    once = all_at_once(run, steps, judge)
    _check(once, run, steps, "all_at_once")
    assert len(once.hypotheses) <= 1
    sequential = step_by_step(run, steps, judge)
    _check(sequential, run, steps, "step_by_step")
    if sequential.hypotheses:  # it stops at the first step judged a mistake
        assert len(sequential.hypotheses) == 1
    halving = binary_search(run, steps, judge)
    _check(halving, run, steps, "binary_search")


@pytest.mark.parametrize(("run", "steps"), RUNS)
def test_dover_gives_at_most_one_hypothesis_per_trial_inside_it(
    judge: ChatClientJudge, run: Run, steps: list[Step]
) -> None:
    trials = segment_by_kinds(steps)
    result = dover_propose(run, steps, trials, judge)
    _check(result, run, steps, "dover")
    assert len(result.hypotheses) + len(result.failures) == len(trials)
    by_trial = {t.index: t for t in trials}
    for hyp in result.hypotheses:
        assert hyp.trial is not None
        assert by_trial[hyp.trial].start <= hyp.step < by_trial[hyp.trial].end


@pytest.mark.parametrize(("run", "steps"), RUNS)
def test_judge_segmentation_covers_the_run(
    judge: ChatClientJudge, run: Run, steps: list[Step]
) -> None:
    trials = segment_with_judge(run, steps, judge)
    assert trials and trials[0].start == steps[0].index and trials[-1].end == steps[-1].index + 1
    assert all(a.end == b.start for a, b in pairwise(trials))
    assert [t.index for t in trials] == list(range(len(trials)))


@pytest.mark.parametrize(("run", "steps"), RUNS)
def test_judged_milestones_are_few_and_titled(
    judge: ChatClientJudge, run: Run, steps: list[Step]
) -> None:
    milestones = judge_milestones(run.task, judge)
    assert len(milestones) <= MAX_JUDGED_MILESTONES
    assert all(m.title for m in milestones)
    statuses = judge_achievement(milestones, steps, judge, run.task.question)
    assert len(statuses) == len(milestones)
    assert set(statuses) <= {"achieved", "partial", "missed"}


@needs_shared_data
def test_recordings_yield_some_hypotheses(judge: ChatClientJudge) -> None:
    """The fixture is not all failures: the pipeline gets usable answers from the real model."""
    produced = sum(
        len(method(run, steps, judge).hypotheses)
        for run, steps in LOADED
        for method in (all_at_once, step_by_step, binary_search)
    )
    assert produced >= 3


def test_mangled_recording_is_retried_then_yields_no_hypothesis(tmp_path: Path) -> None:
    mangled = tmp_path / "mangled.jsonl"
    rows = [json.loads(line) for line in RECORDINGS.read_text().splitlines() if line.strip()]
    for row in rows:
        response = row["record"]["response"]
        response["content"] = strip_json(response["content"])
    mangled.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run, steps = math_run()
    with _replaying(mangled) as judge:
        result = all_at_once(run, steps, judge)
    assert result.hypotheses == []
    assert len(result.failures) == 3  # the first reply and two retries
    assert all("no JSON object" in f for f in result.failures)
