"""A team in plain Python: a Solver and a Checker taking turns until the Checker answers.

Run it by import path from the repository root: `--team examples.teams.pair:TEAM`.
"""

from branchpoint.agents.routing import Termination, round_robin
from branchpoint.agents.teams import AgentSpec, TeamSpec

PROMPTS = {
    "Solver": "Solve the math problem step by step. End with the line 'RESULT: <number>'.",
    "Checker": "Check the Solver's steps. If they are right, reply with one line "
    "'FINAL ANSWER: <number>'; otherwise say which step is wrong.",
}

TEAM = TeamSpec(
    name="pair",
    agents=(AgentSpec("Solver", PROMPTS["Solver"]), AgentSpec("Checker", PROMPTS["Checker"])),
    first="Solver",
    advance=round_robin(
        ["Solver", "Checker"], Termination(texts=("FINAL ANSWER",), sources=("Checker",))
    ),
    prompt_for=lambda state, agent: PROMPTS[agent],
    max_steps=4,
)
