"""Span attribute names: GenAI semantic conventions, OpenInference, and branchpoint's own.

The GenAI conventions are still in development upstream and their Python constants are
deprecated, so the names we depend on are pinned here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchpoint.model import Run

# GenAI semantic conventions
OPERATION = "gen_ai.operation.name"  # invoke_workflow | invoke_agent | chat | execute_tool
AGENT_NAME = "gen_ai.agent.name"
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
PROMPT = "gen_ai.prompt"
COMPLETION = "gen_ai.completion"

# OpenInference, so Phoenix renders our traces natively
OI_KIND = "openinference.span.kind"  # CHAIN | AGENT | LLM | TOOL
OI_INPUT = "input.value"
OI_OUTPUT = "output.value"
OI_MODEL = "llm.model_name"

# branchpoint's own
KIND = "branchpoint.kind"  # run | step | chat | tool
RUN_ID = "branchpoint.run_id"
STEP = "branchpoint.step"
STEP_KIND = "branchpoint.step_kind"
CONTENT = "branchpoint.content"
PARENT_RUN_ID = "branchpoint.parent_run_id"
FORK_STEP = "branchpoint.fork_step"
INTERVENTION_ID = "branchpoint.intervention_id"
INTERVENED = "branchpoint.intervened"
TEAM = "branchpoint.team"
TASK_ID = "branchpoint.task_id"
TASK = "branchpoint.task"  # the Task as JSON
STATUS = "branchpoint.status"
SUCCESS = "branchpoint.success"
FINAL_ANSWER = "branchpoint.final_answer"
ERROR = "branchpoint.error"
SEED = "branchpoint.seed"
FAULTS = "branchpoint.faults"  # JSON list of injected faults (sim ground truth)
SOURCE = "branchpoint.source"  # an imported run: its format and file ("whowhen:hand_crafted/20")
ANNOTATIONS = "branchpoint.annotations"  # JSON list of AnnotatedFailure of an imported run
THREAD_ID = "branchpoint.thread_id"
SWEEP_ID = "branchpoint.sweep_id"
NODE_ID = "branchpoint.node_id"  # the Ray node a span was made on
REQUEST_HASH = "branchpoint.request_hash"
CACHED = "branchpoint.cached"  # the LLM response came from the record store
TOOL_INPUT = "branchpoint.tool.input"
TOOL_OUTPUT = "branchpoint.tool.output"
TOOL_OK = "branchpoint.tool.ok"
NEXT_SPEAKER = "branchpoint.next_speaker"  # the speaker a selector model chose after a step
TEAM_SOURCE = "branchpoint.team_source"  # where the run's team came from (TeamSource JSON)
N_STEPS = "branchpoint.n_steps"  # on a run span: how many step spans the run made
CHECKPOINT_ID = "langgraph.checkpoint_id"

# Content attributes are capped so one verbose model cannot bloat the database.
MAX_CONTENT_CHARS = 16_000

# OpenInference's input and output repeat another attribute of the same span (a chat span's
# prompt and completion, a tool's input and output, a step's content): the store keeps one copy
# (the prompt is most of a chat span's bytes) and lists the dropped copies under MIRRORED;
# exports put them back.
MIRRORS: dict[str, tuple[str, ...]] = {
    OI_INPUT: (PROMPT, TOOL_INPUT),
    OI_OUTPUT: (COMPLETION, TOOL_OUTPUT, CONTENT),
}
MIRRORED = "branchpoint.mirrored"


def _mirror_source(attributes: dict[str, Any], mirror: str) -> Any:
    return next((attributes[k] for k in MIRRORS[mirror] if k in attributes), None)


def without_mirrors(attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` (changed in place) without the OpenInference copies equal to their source."""
    dropped = [
        m
        for m in MIRRORS
        if attributes.get(m) is not None and attributes[m] == _mirror_source(attributes, m)
    ]
    if dropped:
        for mirror in dropped:
            del attributes[mirror]
        attributes[MIRRORED] = dropped
    return attributes


def with_mirrors(attributes: dict[str, Any]) -> dict[str, Any]:
    """Stored `attributes` (changed in place) with their dropped OpenInference copies restored."""
    for mirror in attributes.pop(MIRRORED, None) or ():
        source = _mirror_source(attributes, mirror) if mirror in MIRRORS else None
        if source is not None:
            attributes[mirror] = source
    return attributes


_CUT_MARK = re.compile(r"…\[\+\d+ chars\]")


def cap(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """Truncate text for a span attribute, marking the cut (text cut before is kept as it is,
    so an exported and re-imported span keeps its content)."""
    if len(text) <= limit or _CUT_MARK.fullmatch(text, limit):
        return text
    return text[:limit] + f"…[+{len(text) - limit} chars]"


def run_identity(run: Run) -> dict[str, Any]:
    """What every run span says about the run itself, recorded here or imported."""
    return {
        KIND: "run",
        OPERATION: "invoke_workflow",
        RUN_ID: run.run_id,
        TEAM: run.team,
        TASK_ID: run.task.task_id,
        TASK: run.task.model_dump_json(),
        REQUEST_MODEL: run.model,
        SEED: run.seed,
        OI_KIND: "CHAIN",
        OI_INPUT: cap(run.task.question),
    }


def chat_request(model: str, prompt: str) -> dict[str, Any]:
    """A `chat` span's attributes when the request is sent (GenAI and OpenInference)."""
    prompt = cap(prompt)  # one string for both names: the store keeps it once (MIRRORS)
    return {
        KIND: "chat",
        OPERATION: "chat",
        REQUEST_MODEL: model,
        OI_KIND: "LLM",
        OI_MODEL: model,
        PROMPT: prompt,
        OI_INPUT: prompt,
    }


def chat_reply(text: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A `chat` span's attributes when the reply is back."""
    text = cap(text)
    return {
        COMPLETION: text,
        OI_OUTPUT: text,
        INPUT_TOKENS: input_tokens,
        OUTPUT_TOKENS: output_tokens,
    }
