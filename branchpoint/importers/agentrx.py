"""AgentRx failure trajectories with their ground truth (Magentic-One and τ-bench).

An AgentRx data folder holds `magentic_dataset/<id>.json` (a bare JSON array of `{role,
content}` in the role grammar of Who&When's hand-crafted logs; the question is the first
entry's content), `tau_dataset/<id>.json` (`{task_id, reward, info.task.instruction, traj}`)
and `ground_truth/<subset>_ground_truth.json`: per trajectory a list of failures `{failure_id,
step_number, step_reason, failure_category, failed_agent}` and a `root_cause` naming one.

Beware of three things upstream: `step_number` is 1-based (a step here is 0-based), agent names
vary in case (`Websurfer` for `WebSurfer`), and failure ids are numbers or strings.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from branchpoint.errors import BranchpointError
from branchpoint.importers import Skipped, SkippedFile, load_json, read_guarded, unique_runs
from branchpoint.importers.logs import ForeignLog
from branchpoint.interventions.whowhen import history_steps
from branchpoint.model import AnnotatedFailure, Run, Step, StepKind, Task

GROUND_TRUTH_GLOB = "*ground_truth*.json"
DATASET_SUFFIX = "_dataset"
_TAU_KINDS: dict[str, StepKind] = {"tool": "tool_result", "system": "message"}


class AgentRxError(BranchpointError):
    """An AgentRx file that does not have the documented shape."""


def load_ground_truth(path: Path) -> dict[str, dict[str, Any]]:
    """trajectory id (as text) -> its ground-truth entry, from one ground-truth file."""
    data = load_json(path)
    if not isinstance(data, list) or not all(
        isinstance(e, dict) and "trajectory_id" in e for e in data
    ):
        raise AgentRxError(
            f"{path}: a ground-truth file is a JSON list of {{trajectory_id, failures, root_cause}}"
        )
    return {str(e["trajectory_id"]): e for e in data}


def subset_of(path: Path) -> str:
    """`magentic` or `tau` (the prefix of a `<subset>_dataset` folder or a ground-truth file)."""
    for part in reversed(path.parts):
        if part.endswith(DATASET_SUFFIX):
            return part.removesuffix(DATASET_SUFFIX)
    return path.stem.split("_")[0]


def _agent_names(steps: list[Step]) -> dict[str, str]:
    return {s.agent.casefold(): s.agent for s in steps}


def failures_of(
    entry: dict[str, Any], steps: list[Step], where: str
) -> tuple[AnnotatedFailure, ...]:
    """The failures of one ground-truth entry, 0-based, agents spelled as in the trajectory."""
    names = _agent_names(steps)
    root = entry.get("root_cause") or {}
    root_id = (
        str(root.get("failure_id"))
        if isinstance(root, dict) and root.get("failure_id") is not None
        else None
    )
    failures = entry.get("failures") or []
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        raise AgentRxError(
            f"{where}: its ground-truth failures must be a list of objects {{failure_id, "
            f"step_number, step_reason, failure_category, failed_agent}}, not {failures!r:.60}"
        )
    found = []
    for failure in failures:
        try:
            step = int(failure["step_number"]) - 1
        except (KeyError, TypeError, ValueError):
            raise AgentRxError(
                f"{where}: failure {failure.get('failure_id')!r} has no integer step_number"
            ) from None
        if not 0 <= step < len(steps):
            raise AgentRxError(
                f"{where}: failure {failure.get('failure_id')!r} has step_number {step + 1}, "
                f"outside the trajectory's 1-{len(steps)}"
            )
        agent = str(failure.get("failed_agent") or steps[step].agent).strip()
        failure_id = None if failure.get("failure_id") is None else str(failure["failure_id"])
        found.append(
            AnnotatedFailure(
                agent=names.get(agent.casefold(), agent),
                step=step,
                reason=str(failure.get("step_reason") or ""),
                root_cause=failure_id is not None and failure_id == root_id,
                failure_id=failure_id,
                category=failure.get("failure_category"),
            )
        )
    return tuple(found)


def _tau_content(entry: dict[str, Any]) -> str:
    calls = entry.get("tool_calls") or []
    text = str(entry.get("content") or "")
    shown = [
        f"{c['function']['name']}({c['function'].get('arguments', '')})"
        for c in calls
        if isinstance(c, dict) and "function" in c
    ]
    return "\n".join([text, *shown]).strip()


def _tau_steps(run_id: str, traj: list[Any]) -> list[Step]:
    return [
        Step(
            run_id=run_id,
            index=index,
            agent=str(entry.get("role") or "unknown"),
            kind=_TAU_KINDS.get(str(entry.get("role")), "message"),
            content=_tau_content(entry),
        )
        for index, entry in enumerate(traj)
    ]


def read_trajectory(path: Path, truth: dict[str, Any] | None) -> ForeignLog:
    """One trajectory file (Magentic-One array or τ-bench object) with its ground-truth entry."""
    data = load_json(path)
    subset = subset_of(path)
    run_id = f"agentrx-{subset}-{path.stem}"
    if (
        isinstance(data, list)
        and data
        and all(isinstance(e, dict) and "content" in e for e in data)
    ):
        steps = history_steps(run_id, data)
        question, answer, success = str(data[0].get("content") or ""), None, False
    elif isinstance(data, dict) and isinstance(data.get("traj"), list):
        info = data.get("info") or {}
        task = (info.get("task") or {}) if isinstance(info, dict) else None
        if not isinstance(task, dict) or not all(isinstance(e, dict) for e in data["traj"]):
            raise AgentRxError(
                f"{path}: a τ-bench trajectory is {{traj: [{{role, content}}, …], "
                "info: {task: {instruction, outputs}}, reward}; this one's traj or info.task "
                "holds something else"
            )
        steps = _tau_steps(run_id, data["traj"])
        question = str(task.get("instruction") or "")
        outputs = task.get("outputs") or []
        answer = ", ".join(map(str, outputs)) or None
        success = float(data.get("reward") or 0.0) >= 1.0
    else:
        raise SkippedFile(
            "JSON, but not an AgentRx trajectory (a list of {role, content} or a τ-bench {traj})"
        )
    found = failures_of(truth, steps, str(path)) if truth else ()
    run = Run(
        run_id=run_id,
        task=Task(
            task_id=f"{subset}-{path.stem}", question=question, answer=answer, source="agentrx"
        ),
        team=f"agentrx-{subset}",
        model="unknown",
        status="succeeded" if success else "failed",
        success=success,
        n_steps=len(steps),
        source=f"agentrx:{path}",
        annotations=found,
    )
    return ForeignLog(run=run, steps=tuple(steps))


def _read_one(path: Path, truth: dict[str, Any] | None) -> list[ForeignLog]:
    return [read_trajectory(path, truth)]


def read_dataset(path: Path) -> tuple[list[ForeignLog], Skipped]:
    """Every trajectory under an AgentRx data folder, matched with its subset's ground truth.

    A single trajectory file is read with the ground truth found beside its dataset folder
    (`../ground_truth/`). A trajectory without a ground-truth entry is imported unannotated.
    """
    root = path if path.is_dir() else path.parent.parent
    truths: dict[str, dict[str, dict[str, Any]]] = {}
    skipped: Skipped = []
    for file in sorted(root.rglob(GROUND_TRUTH_GLOB)):
        try:
            truths[subset_of(file)] = load_ground_truth(file)
        except (SkippedFile, AgentRxError) as exc:
            skipped.append((str(file.relative_to(root)), str(exc).removeprefix(f"{file}: ")))
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*.json") if p.is_file() and "ground_truth" not in p.name)
    )
    logs = []
    for file in files:
        truth = truths.get(subset_of(file), {}).get(file.stem)
        try:
            logs += read_guarded(partial(_read_one, truth=truth), file)
        except (SkippedFile, AgentRxError) as exc:
            why = str(exc).removeprefix(f"{file}: ")
            if path.is_file():
                raise AgentRxError(f"{file}: {why}") from None
            skipped.append((str(file.relative_to(root)), why[:200]))
    return unique_runs(logs, skipped)
