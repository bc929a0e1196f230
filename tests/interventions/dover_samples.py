"""Small runs shared by the DoVer tests and the fixture recorder: a failed math run with a
re-plan, and the paths of the shared data the tests read."""

from __future__ import annotations

from pathlib import Path

from branchpoint.model import Fault, Run, Step, Task

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
WHOWHEN = DATA / "whowhen_samples"
RECORDINGS = Path(__file__).resolve().parent / "fixtures" / "judge_recordings.jsonl"
RECORDED_WHOWHEN = ("algorithm_generated_9.json", "hand_crafted_7.json")
RECORDED_MODEL = "local"

QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' "
    "market daily for $2 per fresh duck egg. How much in dollars does she make every day at "
    "the farmers' market?"
)
SOLUTION = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)


def math_run() -> tuple[Run, list[Step]]:
    """A failed `math` run: the Solver subtracts wrongly at step 1, the Verifier sends the work
    back, the Planner re-plans at step 3 and the Solver repeats the error."""
    run_id = "math-ducks"
    task = Task(
        task_id="gsm8k-0", question=QUESTION, answer="18", solution=SOLUTION, source="gsm8k"
    )
    turns = [
        (
            "Planner",
            "plan",
            (
                "1. Find the eggs left after breakfast and muffins.\n2. Multiply the eggs left by "
                "the price per egg.\n3. Report the daily income."
            ),
        ),
        ("Solver", "message", "Eggs left: 16 - 3 - 4 = 8. Income: 8 * 2 = 16 dollars."),
        (
            "Verifier",
            "message",
            (
                "The plan item 1 result should be double-checked before "
                "answering. Please redo the computation."
            ),
        ),
        (
            "Planner",
            "plan",
            (
                "1. Subtract the eggs eaten and the eggs baked from the eggs laid.\n"
                "2. Multiply by 2 dollars.\n3. Give the answer."
            ),
        ),
        ("Solver", "message", "16 - 3 - 4 = 8 eggs. 8 * 2 = 16. She makes 16 dollars."),
        ("Verifier", "final", "The computation is consistent. FINAL ANSWER: 16"),
    ]
    steps = [
        Step(run_id=run_id, index=i, agent=agent, kind=kind, content=content)  # type: ignore[arg-type]
        for i, (agent, kind, content) in enumerate(turns)
    ]
    run = Run(
        run_id=run_id,
        task=task,
        team="math",
        model="sim",
        status="failed",
        final_answer="16",
        success=False,
        faults=(Fault(agent="Solver", step=1, kind="arithmetic_error"),),
        n_steps=len(steps),
    )
    return run, steps


def strip_json(text: str) -> str:
    """A reply mangled into non-JSON: every brace removed (used to record and test retries)."""
    return text.replace("{", "").replace("}", "")
