"""Turning judge replies into checked data: JSON extraction and the reply validators."""

from __future__ import annotations

from pathlib import Path

import pytest
from dover_samples import math_run

from branchpoint.interventions.attribution import _blame_parser
from branchpoint.interventions.judge import (
    ChatClientJudge,
    JudgeSpecError,
    ask_json,
    extract_json_object,
    judge_model,
    judging,
    parse_step_index,
    render_log,
    render_prompt,
)
from branchpoint.telemetry.store import DuckDBTraceStore
from branchpoint.telemetry.tracing import setup_tracing


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"step": 3}', {"step": 3}),
        ('```json\n{"agent": "Solver", "step": 1}\n```', {"agent": "Solver", "step": 1}),
        (
            'I think {this} is it: {"step": 2, "reason": "x {y}"} and more {"step": 9}',
            {"step": 2, "reason": "x {y}"},
        ),
        ('[{"step": 1}] then {"step": 4}', {"step": 1}),
        # cut off by the token limit after the answer: the complete members, not an inner object
        (
            '```json\n{"first_wrong_block": 4, "reason": "loops", "blocks": [{"block": 0, "cor',
            {"first_wrong_block": 4, "reason": "loops", "blocks": [{"block": 0}]},
        ),
    ],
)
def test_first_json_object_is_extracted(reply: str, expected: dict[str, object]) -> None:
    assert extract_json_object(reply) == expected


@pytest.mark.parametrize("reply", ["no json here", '"step": 3', "{step: 3}", ""])
def test_no_object_is_a_value_error(reply: str) -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json_object(reply)


def test_step_index_parsing() -> None:
    assert [parse_step_index(v) for v in (3, "4", " 5 ", 6.0)] == [3, 4, 5, 6]
    assert [parse_step_index(v) for v in (True, "x", 2.5, None, "-1")] == [None] * 5


def test_blame_validator_rejects_out_of_range_steps_and_unknown_agents() -> None:
    _, steps = math_run()
    parse = _blame_parser(steps, 0, 5)
    assert parse({"agent": "solver", "step": "1", "reason": "r"}) == ("Solver", 1, "r")
    with pytest.raises(ValueError, match="between 0 and 5"):
        parse({"agent": "Solver", "step": 6})
    with pytest.raises(ValueError, match="one of: Planner, Solver, Verifier"):
        parse({"agent": "Critic", "step": 1})
    with pytest.raises(KeyError):
        parse({"agent": "Solver"})


def test_prompts_render_with_indices_and_ground_truth() -> None:
    run, steps = math_run()
    system, user = render_prompt(
        "all_at_once", question=run.task.question, answer="18", log=render_log(steps), agents="A"
    )
    assert "JSON" in system and "Correct answer: 18" in user and "[Step 5] Verifier:" in user


def test_long_logs_are_cut_to_fit_a_small_context() -> None:
    _, steps = math_run()
    long = [s.model_copy(update={"content": "x" * 5000}) for s in steps]
    assert len(render_log(long, max_chars=400, max_total=600)) < 6 * (100 + 30)


class _ScriptedJudge:
    """A judge that answers every request with non-JSON and remembers how it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    def complete(self, system: str, user: str) -> str:
        self.calls.append(("complete", user, None))
        return "I think it is the Solver."

    def sample(self, system: str, user: str, attempt: int) -> str:
        self.calls.append(("sample", user, attempt))
        return f"Maybe the Planner ({attempt})."


def test_retries_never_repeat_the_same_greedy_request() -> None:
    """Bug 7: the third attempt repeated the second's prompt greedily, so it got the same reply."""
    judge = _ScriptedJudge()
    failures: list[str] = []
    assert ask_json(judge, "sys", "Who failed?", dict, failures=failures) is None
    assert len(failures) == 3
    prompts = [user for _, user, _ in judge.calls]
    assert len(set(prompts)) == 3, "each retry must ask something new"
    assert [how for how, _, _ in judge.calls] == ["complete", "complete", "sample"]
    assert "Attempt 3" in prompts[2] and "I think it is the Solver" in prompts[2]


def test_a_judge_without_sampling_still_gets_distinct_retries() -> None:
    class Greedy:
        def __init__(self) -> None:
            self.prompts: list[str] = []

        def complete(self, system: str, user: str) -> str:
            self.prompts.append(user)
            return "no json"

    judge = Greedy()
    ask_json(judge, "sys", "Who failed?", dict)
    assert len(set(judge.prompts)) == 3


def test_blamed_agent_must_speak_at_the_blamed_step() -> None:
    """Bug 7: the reply check accepted any agent of the log for any step."""
    _, steps = math_run()
    parse = _blame_parser(steps, 0, 5)
    with pytest.raises(ValueError, match="Verifier does not speak at step 1 \\(Solver does\\)"):
        parse({"agent": "Verifier", "step": 1, "reason": "r"})


@pytest.mark.parametrize("spec", [None, "none", "None", " none "])
def test_no_judge_is_accepted(spec: str | None) -> None:
    assert judge_model(spec) is None


@pytest.mark.parametrize("spec", ["sim", "sim:0.5"])
def test_sim_judge_is_refused_in_one_line(spec: str) -> None:
    """Bug 2: `--judge sim` ended in a raw ValueError traceback."""
    with pytest.raises(JudgeSpecError, match="cannot judge; use --judge local") as info:
        judge_model(spec)
    assert "\n" not in str(info.value)


def test_judge_calls_are_llm_calls_with_time_and_tokens(tmp_path: Path) -> None:
    """Bug 7: judge calls were in llm_records only, invisible to SQL's llm_calls."""
    from autogen_ext.models.replay import ReplayChatCompletionClient

    store = DuckDBTraceStore(tmp_path / "j.duckdb")
    provider = setup_tracing(store, "judge-test")
    client = ReplayChatCompletionClient(['{"agent": "Solver", "step": 1, "reason": "x"}'])
    judge = ChatClientJudge(client, tracer=provider.get_tracer("t"), model="replay")
    with judging("run-a"):
        reply = judge.complete("system text", "user text")
    judge.close()
    provider.force_flush()
    rows = store.query("SELECT * FROM llm_calls")
    store.close()
    assert reply.startswith('{"agent"')
    assert len(rows) == 1
    row = rows[0]
    assert (row["run_id"], row["agent"], row["model"]) == ("run-a", "judge", "replay")
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["seconds"] >= 0
    assert "user text" in row["prompt"] and row["completion"] == reply
