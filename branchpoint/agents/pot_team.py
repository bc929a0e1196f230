"""The program-of-thought `math-pot` team: the Solver writes a program, a tool runs it, the
Verifier checks the printed result against the question.

The run's answer is the program's output (the last number it printed), not anything a model
writes about it: the Runner's turn sets it, and the Verifier's ACCEPT makes it final. A REJECT
sends the Solver back to write a new program, up to MAX_REJECTIONS times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from branchpoint.agents.sandbox import CLOSING_FENCE, run_python
from branchpoint.agents.teams import Advance, AgentSpec, TeamSpec, prompt_text, register_team
from branchpoint.agents.tool_turns import ToolTurn, latest_program, register_tool_turn
from branchpoint.model import Task, ToolCall
from branchpoint.tasks import numbers_in

MAX_REJECTIONS = 2
RUN_PROGRAM = "run_program"
ACCEPT = "ACCEPT"


@register_tool_turn(RUN_PROGRAM)
def run_program(message: str, task: Task) -> ToolTurn:
    """The Runner's turn: run the Solver's program and report what it printed."""
    code = latest_program(message)
    if code is None:
        text = "No program to run: the Solver must write one in a ```python block."
        return ToolTurn(ToolCall(tool=RUN_PROGRAM, input="", output=text, ok=False))
    result = run_python(code, files=dict(task.files))
    printed = result.output.strip()
    text = f"The program printed:\n{printed[-1500:]}" if printed else "The program printed nothing."
    return ToolTurn(
        ToolCall(tool=RUN_PROGRAM, input=code, output=text, ok=result.ok, seconds=result.seconds)
    )


def program_answer(content: str) -> str | None:
    """The last number a program printed (the Runner's message), as text."""
    if not content.startswith("The program printed:"):
        return None
    numbers = numbers_in(content.split("\n", 1)[1] if "\n" in content else "")
    return None if not numbers else f"{numbers[-1]:g}"


def _pot_advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
    stall = int(state.get("stall") or 0)
    if agent == "Solver":
        return Advance(kind="message", next="Runner", stall=stall)
    if agent == "Runner":
        answer = program_answer(content)
        return Advance(kind="tool_result", next="Verifier", final_answer=answer, stall=stall)
    answer = state.get("final_answer")
    if content.strip().upper().startswith(ACCEPT) and answer is not None:
        return Advance(kind="final", next=None, done=True, final_answer=str(answer), stall=stall)
    rejections = stall + 1
    # Out of retries: the last program's output stands as the answer.
    done = rejections > MAX_REJECTIONS
    return Advance(
        kind="message",
        next="Solver",
        done=done,
        final_answer=str(answer) if done and answer is not None else None,
        stall=rejections,
    )


def _pot_prompt(state: Mapping[str, Any], agent: str) -> str | None:
    name = {"Solver": "pot_solver", "Verifier": "pot_verifier"}.get(agent)
    return prompt_text(name) if name else None


POT = TeamSpec(
    name="math-pot",
    agents=(
        AgentSpec("Solver", "pot_solver", stop=(CLOSING_FENCE,)),
        AgentSpec("Runner", None, tools=(RUN_PROGRAM,)),
        AgentSpec("Verifier", "pot_verifier"),
    ),
    first="Solver",
    advance=_pot_advance,
    prompt_for=_pot_prompt,
)
register_team(POT)
