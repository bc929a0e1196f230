"""branchpoint: run LLM multi-agent teams and debug their failures by intervention.

The public API is exactly what `__all__` lists (`import branchpoint as bp`): a session, `run`,
`fork`, `replay`, `debug`, `sweep`, `sql`, the data model and the intervention constructors.
Every other module and name is internal and may change without notice.

Names are imported on first use, so `import branchpoint` stays cheap (no Ray, LangGraph or
autogen until a session needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from branchpoint.agents.autogen_team import from_autogen
    from branchpoint.api import (
        RunPlan,
        Session,
        SweepResult,
        current_session,
        debug,
        fork,
        instruct,
        plan_runs,
        replace_message,
        replace_plan,
        replay,
        resample,
        run,
        session,
        sql,
        swap_model,
        sweep,
    )
    from branchpoint.errors import BranchpointError
    from branchpoint.ids import RandomIds, SeededIds, SystemClock, TickClock
    from branchpoint.interventions.pipeline import HypothesisTest, PipelineFailure, RunDebug
    from branchpoint.model import (
        Fault,
        Hypothesis,
        Instruct,
        Intervention,
        Outcome,
        ReplaceMessage,
        ReplacePlan,
        Resample,
        Run,
        Step,
        SwapModel,
        Task,
        ToolCall,
        Trial,
        Verdict,
    )
    from branchpoint.orchestrator.replay import ReplayReport
    from branchpoint.settings import Settings

__all__ = [
    "AgentUpgrade",
    "BranchpointError",
    "Fault",
    "Hypothesis",
    "HypothesisTest",
    "Instruct",
    "Intervention",
    "Outcome",
    "PipelineFailure",
    "RandomIds",
    "ReplaceMessage",
    "ReplacePlan",
    "ReplayReport",
    "Resample",
    "Run",
    "RunDebug",
    "RunPlan",
    "SeededIds",
    "Session",
    "Settings",
    "Step",
    "SwapModel",
    "SweepResult",
    "SystemClock",
    "Task",
    "TickClock",
    "ToolCall",
    "Trial",
    "Verdict",
    "agent_upgrades",
    "current_session",
    "debug",
    "fork",
    "from_autogen",
    "instruct",
    "plan_runs",
    "replace_message",
    "replace_plan",
    "replay",
    "resample",
    "run",
    "session",
    "sql",
    "swap_model",
    "sweep",
    "upgrade",
]

# Where each public name lives (imported on first access).
_MODULES = {
    "branchpoint.api": (
        "RunPlan",
        "Session",
        "SweepResult",
        "current_session",
        "debug",
        "fork",
        "instruct",
        "plan_runs",
        "replace_message",
        "replace_plan",
        "replay",
        "resample",
        "run",
        "session",
        "sql",
        "swap_model",
        "sweep",
        "upgrade",
    ),
    "branchpoint.model": (
        "Fault",
        "Hypothesis",
        "Instruct",
        "Intervention",
        "Outcome",
        "ReplaceMessage",
        "ReplacePlan",
        "Resample",
        "Run",
        "Step",
        "SwapModel",
        "Task",
        "ToolCall",
        "Trial",
        "Verdict",
    ),
    "branchpoint.interventions.pipeline": ("HypothesisTest", "PipelineFailure", "RunDebug"),
    "branchpoint.interventions.upgrade": ("AgentUpgrade", "agent_upgrades"),
    "branchpoint.ids": ("RandomIds", "SeededIds", "SystemClock", "TickClock"),
    "branchpoint.errors": ("BranchpointError",),
    "branchpoint.agents.autogen_team": ("from_autogen",),
    "branchpoint.orchestrator.replay": ("ReplayReport",),
    "branchpoint.settings": ("Settings",),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'branchpoint' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
