"""Import Who&When failure logs (Magentic-One hand-crafted and AG2 algorithm-generated) as runs
and steps with their annotated failure, and score attribution methods against them.

Who&When logs are message-only: they can be segmented and attributed, not replayed. A log's run
id is `whowhen-<subset>-<number>` (`hand_crafted` or `algorithm_generated`, told apart by the
log's own shape), so the upstream layout `Hand-Crafted/2.json` and `Algorithm-Generated/2.json`
gives two runs, and the same log under another folder or file name prefix gives the same run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from branchpoint.errors import TaskFileError
from branchpoint.importers import SkippedFile, load_json
from branchpoint.importers.logs import ForeignLog
from branchpoint.model import AnnotatedFailure, Hypothesis, Run, Step, StepKind, Task

_ROLE = re.compile(r"^\s*(?P<agent>[^()]+?)\s*(?:\((?P<detail>[^)]*)\))?\s*$")
_PLAN = re.compile(r"^\s*(initial|new|updated)?\s*plan\s*:", re.IGNORECASE)
_TOOL_AGENTS = {"computer_terminal", "computerterminal"}
SUBSETS = {"handcrafted": "hand_crafted", "ag2": "algorithm_generated"}
REQUIRED = ("question", "history", "mistake_agent", "mistake_step")


def looks_like_whowhen(data: object) -> bool:
    """Whether parsed JSON has the shape of a Who&When log (a folder walk skips other files)."""
    return isinstance(data, dict) and all(k in data for k in REQUIRED)


def run_id_for(path: Path, kind: str) -> str:
    """`whowhen-<subset>-<stem>`, the subset prefix of sample file names dropped from the stem."""
    subset = SUBSETS[kind]
    stem = path.stem
    for prefix in SUBSETS.values():
        stem = stem.removeprefix(f"{prefix}_")
    return f"whowhen-{subset}-{stem}"


def agent_and_kind(entry: Mapping[str, Any]) -> tuple[str, StepKind]:
    """Agent name and step kind of one history entry (`name` for AG2, `role` for Magentic-One)."""
    content = str(entry.get("content") or "")
    name = entry.get("name")
    if name:
        agent = str(name).strip()
        return agent, "tool_result" if agent.lower() in _TOOL_AGENTS else "message"
    role = str(entry.get("role") or "").strip()
    match = _ROLE.match(role)
    agent = match.group("agent") if match else role
    detail = (match.group("detail") or "").strip().lower() if match else ""
    if agent.lower() in _TOOL_AGENTS:
        return agent, "tool_result"
    if detail.startswith("->"):
        return agent, "instruction"
    if detail == "thought":
        return agent, "plan" if _PLAN.match(content) else "message"
    if detail.startswith("termination"):
        return agent, "final"
    return agent, "message"


def history_steps(run_id: str, history: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The steps of a message history in the Who&When role grammar (also AgentRx's Magentic-One)."""
    steps = []
    for index, entry in enumerate(history):
        agent, kind = agent_and_kind(entry)
        steps.append(
            Step(
                run_id=run_id,
                index=index,
                agent=agent or "unknown",
                kind=kind,
                content=str(entry.get("content") or ""),
            )
        )
    return steps


def _fail(path: Path, problem: str) -> TaskFileError:
    return TaskFileError(
        f"{path}: {problem}; a Who&When log is a JSON object with question, ground_truth, "
        "history [{role|name, content}], mistake_agent, mistake_step and mistake_reason"
    )


def load_whowhen(path: Path | str) -> ForeignLog:
    """Read one Who&When JSON log as a failed run with steps and its annotated mistake."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(path, f"is not JSON ({exc})") from exc
    except RecursionError:
        raise _fail(path, "is nested too deeply to read") from None
    return parse_whowhen(data, path)


def parse_whowhen(data: Any, path: Path) -> ForeignLog:
    """A parsed Who&When log (the JSON already read from `path`) as a ForeignLog."""
    if not isinstance(data, dict):
        raise _fail(path, "is not a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise _fail(path, f"lacks {', '.join(missing)}")
    history = data["history"]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise _fail(path, "history must be a list of objects")
    try:
        mistake_step = int(str(data["mistake_step"]).strip())
    except ValueError as exc:
        raise _fail(path, f"mistake_step {data['mistake_step']!r} is not an integer") from exc
    if not 0 <= mistake_step < len(history):
        raise _fail(path, f"mistake_step {mistake_step} is outside history (0-{len(history) - 1})")

    kind = "ag2" if any(h.get("name") for h in history) else "handcrafted"
    run_id = run_id_for(path, kind)
    answer = data.get("ground_truth")
    task = Task(
        task_id=str(data.get("question_ID") or path.stem),
        question=str(data["question"]),
        answer=None if answer is None else str(answer),
        source="whowhen",
    )
    steps = history_steps(run_id, history)
    mistake = AnnotatedFailure(
        agent=str(data["mistake_agent"]).strip(),
        step=mistake_step,
        reason=str(data.get("mistake_reason") or ""),
        root_cause=True,
    )
    run = Run(
        run_id=run_id,
        task=task,
        team=f"whowhen-{kind}",
        model="unknown",
        status="failed",
        success=False,
        n_steps=len(steps),
        source=f"whowhen:{path}",
        annotations=(mistake,),
    )
    return ForeignLog(run=run, steps=tuple(steps))


def read_file(path: Path) -> list[ForeignLog]:
    """The Who&When log in one file; SkippedFile when the file is JSON of another shape."""
    data = load_json(path)
    if not looks_like_whowhen(data):
        raise SkippedFile("JSON, but not a Who&When log (needs " + ", ".join(REQUIRED) + ")")
    return [parse_whowhen(data, path)]


def load_whowhen_dir(folder: Path | str) -> list[ForeignLog]:
    """Every Who&When log under a folder (walked recursively), sorted by path.

    Strict: a file that is not a Who&When log raises. `branchpoint.importers.import_path` is
    the lenient walk that skips and reports such files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskFileError(f"{folder}: not a folder; pass the folder holding Who&When JSON logs")
    return [load_whowhen(p) for p in sorted(folder.rglob("*.json"))]


def score_attribution(
    predictions: Mapping[str, Hypothesis | None], truths: Mapping[str, Hypothesis]
) -> dict[str, float | int]:
    """Agent-level and step-level accuracy of one method's predictions over the runs in `truths`.

    A missing or None prediction counts as wrong. Agents compare case-insensitively; steps
    compare as integers, exactly.
    """
    agent_correct = step_correct = both_correct = predicted = 0
    for run_id, truth in truths.items():
        guess = predictions.get(run_id)
        if guess is None:
            continue
        predicted += 1
        agent_ok = guess.agent.strip().lower() == truth.agent.strip().lower()
        step_ok = int(guess.step) == int(truth.step)
        agent_correct += agent_ok
        step_correct += step_ok
        both_correct += agent_ok and step_ok
    n = len(truths)
    return {
        "n": n,
        "predicted": predicted,
        "agent_correct": agent_correct,
        "step_correct": step_correct,
        "agent_accuracy": agent_correct / n if n else 0.0,
        "step_accuracy": step_correct / n if n else 0.0,
        "joint_accuracy": both_correct / n if n else 0.0,
    }


def truths_of(logs: Sequence[ForeignLog]) -> dict[str, Hypothesis]:
    """run_id -> annotated root cause, the `truths` argument of `score_attribution`."""
    return {log.run.run_id: log.truth for log in logs if log.truth is not None}
