"""Replay a run from the LLM record store alone and compare it step by step with the original."""

from __future__ import annotations

from dataclasses import dataclass

from branchpoint.agents.team_registry import team_for_run
from branchpoint.errors import BranchpointError
from branchpoint.model import Run, Step
from branchpoint.orchestrator.runner import run_task
from branchpoint.orchestrator.runs import load_run, load_steps, require_replayable
from branchpoint.orchestrator.session import Session


@dataclass(frozen=True)
class ReplayReport:
    """How a replay compares with its original run."""

    original: Run
    replayed: Run
    mismatches: tuple[int, ...]
    n_steps: int

    @property
    def identical(self) -> bool:
        """Every step's agent and content match byte for byte, and so does the outcome."""
        return (
            not self.mismatches
            and self.replayed.status == self.original.status
            and self.replayed.final_answer == self.original.final_answer
        )

    def render(self) -> str:
        """One line for the CLI."""
        verdict = "identical" if self.identical else f"differs at steps {list(self.mismatches)}"
        return (
            f"replayed {self.original.run_id} as {self.replayed.run_id}: {self.n_steps} steps, "
            f"{verdict}; status {self.replayed.status}, answer {self.replayed.final_answer}"
        )


def compare_steps(original: list[Step], replayed: list[Step]) -> tuple[int, ...]:
    """Indices where the replay's agent or content differs (a missing step counts)."""
    n = max(len(original), len(replayed))
    return tuple(
        i
        for i in range(n)
        if i >= len(original)
        or i >= len(replayed)
        or (original[i].agent, original[i].content) != (replayed[i].agent, replayed[i].content)
    )


def replay_run(session: Session, run_id: str) -> ReplayReport:
    """Re-execute a root run in replay mode: every LLM answer must come from the record store."""
    session.flush()
    original = require_replayable(load_run(session.store, run_id))
    if original.parent_run_id is not None:
        raise BranchpointError(
            f"{run_id} is a fork; replay its root run {original.parent_run_id} instead"
        )
    replayed = run_task(
        session,
        team_for_run(original),
        original.task,
        original.model,
        seed=original.seed,
        faults=original.faults,
        record_mode="replay",
    )
    if replayed.status == "errored":
        raise BranchpointError(f"replay of {run_id} failed: {replayed.error}")
    session.flush()
    mismatches = compare_steps(
        load_steps(session.store, original), load_steps(session.store, replayed)
    )
    return ReplayReport(original, replayed, mismatches, original.n_steps)
