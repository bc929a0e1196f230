"""Which agent's model is worth upgrading: a per-agent routing decision, from executed forks.

For each failed run, each agent that calls a model is re-run from its first turn on a stronger
model (`swap_model` for that agent only, the rest of the team unchanged) beside `resample`
controls at the same step. Summed per agent over the runs, an upgrade is worth it when its forks
succeed significantly more often than trying again with the same model: Fisher's exact test,
one-sided, Holm-corrected over the agents tested together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from branchpoint.interventions.verdicts import fisher_exact_greater, holm, wilson_interval
from branchpoint.model import Hypothesis, Run, Step, SwapModel

if TYPE_CHECKING:
    from branchpoint.agents.teams import TeamSpec
    from branchpoint.interventions.pipeline import RunDebug

UPGRADE_METHOD = "upgrade"
ALPHA = 0.05
UpgradeVerdict = Literal["worth upgrading", "not significant", "no better than control"]


def upgrade_hypotheses(run: Run, steps: Sequence[Step], team: TeamSpec) -> list[Hypothesis]:
    """One claim per agent that calls a model and speaks in the run: "its model is too weak",
    at its first turn (a fork there re-runs everything the agent did)."""
    found: list[Hypothesis] = []
    for agent in (a.name for a in team.agents if a.calls_model):
        first = next((s.index for s in steps if s.agent == agent), None)
        if first is not None:
            reason = f"{agent}'s model is too weak for this task (a stronger one from step {first})"
            found.append(
                Hypothesis(
                    run_id=run.run_id, agent=agent, step=first, reason=reason, method=UPGRADE_METHOD
                )
            )
    return found


def upgrade_arm(hypothesis: Hypothesis, model: str) -> SwapModel:
    """The fork that tests an upgrade claim: the agent's turns from its first on `model`."""
    return SwapModel(step=hypothesis.step, model=model, agent=hypothesis.agent)


@dataclass(frozen=True)
class AgentUpgrade:
    """One agent's upgrade, summed over the runs: forks on the stronger model and the resample
    controls at the same steps."""

    agent: str
    model: str
    runs: int
    successes: int
    forks: int
    control_successes: int
    control_forks: int
    p_value: float  # Fisher's exact, one-sided: upgraded forks succeed more than controls
    holm_p: float  # adjusted over the agents tested together

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval of the upgraded forks' success rate."""
        return wilson_interval(self.successes, self.forks)

    @property
    def difference(self) -> float:
        """Success rate of the upgraded forks minus the controls'."""
        return self.successes / max(self.forks, 1) - self.control_successes / max(
            self.control_forks, 1
        )

    @property
    def verdict(self) -> UpgradeVerdict:
        """Worth upgrading only when the upgrade beats its controls after Holm's correction."""
        if self.difference <= 0:
            return "no better than control"
        return "worth upgrading" if self.holm_p < ALPHA else "not significant"


def agent_upgrades(reports: Sequence[RunDebug]) -> list[AgentUpgrade]:
    """The upgrade tests of debugged runs, summed per agent (agents in order of first
    appearance), with Fisher's p and Holm's adjustment over the agents."""
    sums: dict[tuple[str, str], list[int]] = {}
    for report in reports:
        for test in report.tests:
            if test.hypothesis.method != UPGRADE_METHOD:
                continue
            assert isinstance(test.intervention, SwapModel)
            row = sums.setdefault((test.hypothesis.agent, test.intervention.model), [0] * 5)
            row[0] += 1
            row[1] += sum(o.success for o in test.outcomes)
            row[2] += len(test.outcomes)
            row[3] += sum(o.success for o in test.controls)
            row[4] += len(test.controls)
    p_values = [fisher_exact_greater(s, n, c, m) for _, s, n, c, m in sums.values()]
    return [
        AgentUpgrade(agent, model, runs, s, n, c, m, p, adjusted)
        for ((agent, model), (runs, s, n, c, m)), p, adjusted in zip(
            sums.items(), p_values, holm(p_values), strict=True
        )
    ]
