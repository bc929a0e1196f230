"""The judge splits a failed run into trials only for a method that reads trials (`dover`): any
other judged method saves that model call (the demo's `ldb` made it twice for nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from branchpoint.agents.teams import MATH
from branchpoint.interventions.pipeline import DebugConfig, debug_run
from branchpoint.model import Fault, Task
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.session import Session
from branchpoint.settings import Settings

TASK = Task(
    task_id="t-wage",
    question="Leo earns $15 per hour for 8 hours a day over 5 days and spends $200. What is left?",
    answer="400",
    solution="15*8=<<15*8=120>>120\n120*5=<<120*5=600>>600\n600-200=<<600-200=400>>400\n#### 400",
)
SEGMENTING = "You label the planning steps"


class CountingJudge:
    """Blames the Solver's step 2 whatever it is asked; remembers every system prompt."""

    def __init__(self) -> None:
        self.systems: list[str] = []

    def complete(self, system: str, user: str) -> str:
        self.systems.append(system)
        if system.startswith(SEGMENTING):
            return json.dumps({"plan_steps": [0]})
        return json.dumps(
            {"agent": "Solver", "step": 2, "reason": "wrong operand", "mistake": True}
        )


def test_only_a_method_that_reads_trials_has_the_judge_segment_the_run(tmp_path: Path) -> None:
    with Session(Settings(db_path=tmp_path / "t.duckdb"), ray=False) as session:
        faulty = run_task(
            session,
            MATH,
            TASK,
            "sim",
            seed=6,
            faults=[Fault(agent="Solver", step=2, kind="wrong_operand")],
        )
        asked: dict[str, list[str]] = {}
        for method in ("all_at_once", "dover"):
            judge = CountingJudge()
            config = DebugConfig(methods=(method,), repeats=1, judge=judge)
            report = debug_run(session, faulty.run_id, config)
            assert report.hypotheses, report.failures
            asked[method] = judge.systems
    assert not any(s.startswith(SEGMENTING) for s in asked["all_at_once"])
    assert sum(s.startswith(SEGMENTING) for s in asked["dover"]) == 1
