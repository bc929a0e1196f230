"""The one data model of branchpoint: runs, steps, trials, hypotheses, interventions, outcomes, verdicts.

Every component imports these types; nothing re-declares them. This module is the one schema
home: the DoVer pipeline's DuckDB tables are generated from the row models below
(`telemetry/schema.py`), and every shape persisted as JSON (message-store steps, interventions,
sweep specs and items) is `Versioned`: its dumps carry `schema_version`. `SCHEMA_VERSION` governs
both, because trace databases and sweep tables outlive the code that wrote them.

Schema versions:
  1  the first released layout.
  2  hot span attributes stored as columns of `spans`; `outcomes.item_id`;
     `llm_records.schema_version`; JSON payloads carry `schema_version`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    computed_field,
    model_serializer,
    model_validator,
)

from branchpoint.errors import BranchpointError

SCHEMA_VERSION = 2

RunStatus = Literal["succeeded", "failed", "errored", "running"]
StepKind = Literal["plan", "instruction", "message", "tool_result", "final"]
VerdictLabel = Literal[
    "validated", "partially validated", "no better than control", "refuted", "inconclusive"
]
FaultKind = Literal[
    "wrong_operand", "arithmetic_error", "skip_plan_item", "ignore_instruction", "accept_wrong"
]


# An int stored as BIGINT in the tables generated from these models (others are INTEGER).
BigInt = Annotated[int, Field(json_schema_extra={"sql_type": "BIGINT"})]


class SchemaVersionError(BranchpointError):
    """Data written by a newer branchpoint than the one reading it."""


def check_schema_version(version: int, what: str) -> None:
    """Refuse data of a schema version newer than this code understands."""
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{what} has schema version {version}, newer than this branchpoint's "
            f"({SCHEMA_VERSION}); upgrade branchpoint"
        )


class Frozen(BaseModel):
    """Base for immutable, JSON-serialisable records.

    Computed ids are part of every dump; a dump validates back (the ids are recomputed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        computed = cls.model_computed_fields
        if computed and isinstance(data, dict) and any(k in data for k in computed):
            return {k: v for k, v in data.items() if k not in computed}
        return data


class Versioned(Frozen):
    """A record persisted as JSON: its dumps carry `schema_version`, and loading refuses a newer
    one. A dump without the key is version 1 (written before versions were recorded); versions
    1 and 2 of these shapes are identical, so older dumps load as they are."""

    @model_validator(mode="before")
    @classmethod
    def _check_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" in data:
            data = dict(data)
            check_schema_version(int(data.pop("schema_version")), f"a stored {cls.__name__}")
        return data

    @model_serializer(mode="wrap")
    def _with_version(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        dumped["schema_version"] = SCHEMA_VERSION
        return dumped


class Task(Frozen):
    """One problem for a team: a question, its ground-truth answer and optional worked solution."""

    task_id: str
    question: str
    answer: str | None = None
    solution: str | None = None  # worked solution: GSM8K `<<a*b=c>>` lines or GSM-Plus `... = N`
    source: str = "builtin"
    # HumanEval-style tasks: tests to run against the final code, and the function they call.
    test: str | None = None
    entry_point: str | None = None
    # Files placed in the task's workspace folder (name -> text), for the FileSurfer.
    files: dict[str, str] = Field(default_factory=dict)


class Fault(Frozen):
    """A fault injected into a `sim` run: the ground truth a debugger is measured against.

    `recurrence` is the chance the fault happens again when its step is re-sampled
    (1.0: the fault is seeded and always recurs).
    """

    agent: str
    step: int = Field(ge=0)
    kind: FaultKind
    recurrence: float = Field(default=1.0, ge=0.0, le=1.0)


class AnnotatedFailure(Frozen):
    """A failure annotated in an imported log (Who&When, AgentRx): the ground truth of a foreign run.

    `step` is 0-based like `Step.index`. A run can carry several; `root_cause` marks the decisive
    one (a Who&When log has exactly one, which is its root cause).
    """

    agent: str
    step: int = Field(ge=0)
    reason: str = ""
    root_cause: bool = True
    failure_id: str | None = None
    category: str | None = None


class ToolCall(Frozen):
    """One tool invocation inside a step."""

    tool: str
    input: str
    output: str
    ok: bool
    seconds: float = 0.0


class Step(Versioned):
    """One agent turn inside a run, shown to debuggers as `[Step k] agent: content`."""

    run_id: str
    index: int = Field(ge=0)
    agent: str
    kind: StepKind
    content: str
    checkpoint_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    seconds: float = 0.0
    tool_calls: tuple[ToolCall, ...] = ()

    def render(self) -> str:
        """The line a debugger sees for this step."""
        return f"[Step {self.index}] {self.agent}: {self.content}"


class TeamSource(Frozen):
    """Where a run's team came from, recorded with the run so that any process (an agent host on
    another node, a fork started tomorrow) resolves the same team.

    `builtin`: `ref` is the name. `import`: `ref` is `pkg.module:attr` and `code_path` the folder
    that holds `pkg`. `file`: `text` is the validated team file as JSON with its prompts inlined.
    `autogen`: `text` is the team's component JSON (`dump_component()`).
    """

    version: Literal[1] = 1
    kind: Literal["builtin", "import", "file", "autogen"]
    ref: str
    text: str | None = None
    code_path: str | None = None


class Run(Frozen):
    """One execution of a team on a task, possibly a fork of another run."""

    run_id: str
    task: Task
    team: str
    model: str
    seed: int = 0
    status: RunStatus = "running"
    final_answer: str | None = None
    success: bool | None = None
    error: str | None = None
    parent_run_id: str | None = None
    fork_step: int | None = None
    intervention_id: str | None = None
    thread_id: str | None = None
    faults: tuple[Fault, ...] = ()
    sweep_id: str | None = None
    # Imported runs: where the log came from (e.g. "whowhen:hand_crafted/20.json") and its
    # annotated failures. An imported run has no checkpoints: it cannot be forked or replayed.
    source: str | None = None
    annotations: tuple[AnnotatedFailure, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    n_steps: int = 0
    team_source: TeamSource | None = None  # None: a built-in team, found by `team`


class Trial(Frozen):
    """Steps from one (re-)plan to the next, inclusive of `start`, exclusive of `end`."""

    run_id: str
    index: int
    start: int
    end: int


class Hypothesis(Frozen):
    """Who failed, at which step, and why, according to one attribution method."""

    run_id: str
    agent: str
    step: int = Field(ge=0)
    reason: str
    method: str
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    trial: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hypothesis_id(self) -> str:
        """Stable id: the same claim by the same method on the same run is one hypothesis."""
        return content_id("hyp", [self.run_id, self.method, self.agent, self.step])


class _InterventionBase(Versioned):
    step: int = Field(ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def intervention_id(self) -> str:
        """Stable id derived from the edit itself, so re-planning a sweep finds the same work."""
        edit = self.model_dump(mode="json", exclude={"intervention_id"})
        edit.pop("schema_version")  # the id names the edit, whichever version stored it
        return content_id("iv", edit)


class ReplaceMessage(_InterventionBase):
    """Replace the content of step k (the agent's turn is taken as given, not re-run)."""

    kind: Literal["replace_message"] = "replace_message"
    content: str = Field(min_length=1)


class ReplacePlan(_InterventionBase):
    """Replace the task ledger's facts and/or plan from step k on."""

    kind: Literal["replace_plan"] = "replace_plan"
    facts: str | None = None
    plan: str | None = None


class Instruct(_InterventionBase):
    """Give the agent acting at step k a corrected instruction, then re-run step k."""

    kind: Literal["instruct"] = "instruct"
    instruction: str = Field(min_length=1)


class Resample(_InterventionBase):
    """No edit: re-run from step k with a fresh sample (the control arm)."""

    kind: Literal["resample"] = "resample"


class SwapModel(_InterventionBase):
    """Run step k onward on another model: every agent's turns, or only `agent`'s (the rest
    of the team unchanged: a per-agent model upgrade)."""

    kind: Literal["swap_model"] = "swap_model"
    model: str = Field(min_length=1)
    agent: str | None = None


class RuntimeTrace(_InterventionBase):
    """Re-run step k with the LDB block-level runtime trace of the program that failed there and
    the judge's verdict per block; the old program itself is withheld (small models copy code
    they are shown back verbatim)."""

    kind: Literal["runtime_trace"] = "runtime_trace"
    trace: str = Field(min_length=1)


Intervention = Annotated[
    ReplaceMessage | ReplacePlan | Instruct | Resample | SwapModel | RuntimeTrace,
    Field(discriminator="kind"),
]
INTERVENTION_ADAPTER: TypeAdapter[Intervention] = TypeAdapter(Intervention)


class Outcome(Frozen):
    """What one forked replay achieved."""

    fork_run_id: str
    parent_run_id: str
    intervention_id: str
    intervention_kind: str
    step: int
    repeat: int
    success: bool
    milestones_achieved: int
    milestones_total: int
    progress_delta: float
    fulfilled: bool
    input_tokens: BigInt = 0
    output_tokens: BigInt = 0
    seconds: float = 0.0
    hypothesis_id: str | None = None
    sweep_id: str | None = None
    item_id: str | None = None  # the sweep item this replay carried out


class Verdict(Frozen):
    """Whether a hypothesis survived its intervention test, with the control arm beside it."""

    hypothesis_id: str
    run_id: str
    intervention_id: str
    label: VerdictLabel
    n: int
    successes: int
    fulfilled: int
    mean_progress: float
    wilson_low: float
    wilson_high: float
    control_n: int
    control_successes: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def control_rate(self) -> float:
        """Success rate of the resample controls at the same step."""
        return self.control_successes / self.control_n if self.control_n else 0.0


class FunctionToolSpec(Frozen):
    """A Python function an agent may call (autogen's `FunctionTool`): by import path, or as
    autogen's component config (which carries the function's source code)."""

    name: str
    import_path: str | None = None  # "pkg.module:function"
    component: dict[str, Any] | None = None  # FunctionTool.dump_component().model_dump()
    code_path: str | None = None  # folder put on sys.path before importing


class SelectorSpec(Frozen):
    """How a model picks the next speaker after a turn (autogen's `SelectorGroupChat`)."""

    prompt: str  # a template with {roles}, {participants} and {history}
    participants: tuple[str, ...]
    descriptions: tuple[str, ...]
    allow_repeated_speaker: bool = False
    max_attempts: int = Field(default=3, ge=1)
    model: str | None = None  # None: the run's model
    model_client: dict[str, Any] | None = None  # an autogen client component, used as it is


class MessageLink(Frozen):
    """One message of the append-only store with its predecessor's id (None: a chain's first)."""

    message_id: str
    parent_id: str | None
    step: Step


class TranscriptRef(Frozen):
    """A step's transcript and plan by reference: message ids the host resolves from its cache,
    plus the messages the driver has not yet sent to that host (oldest first)."""

    head: str | None
    plan_id: str | None = None
    links: tuple[MessageLink, ...] = ()


class InterventionRecord(Frozen):
    """A row of `interventions`: an intervention tested against a hypothesis of a run."""

    intervention_id: str
    run_id: str
    hypothesis_id: str | None = None
    kind: str
    step: int
    payload: Intervention
    sweep_id: str | None = None


class SweepSpec(Versioned):
    """What a sweep covers: which runs (a SQL filter or ids), which methods, how many replays."""

    where: str | None = None
    run_ids: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("value_curve",)
    repeats: int = 3
    curve_repeats: int = 6
    judge_model: str | None = None
    # A model-upgrade sweep: each agent's first turn re-run on this model beside resample
    # controls (`interventions/upgrade.py`), besides any methods' hypotheses.
    upgrade_model: str | None = None


class SweepRecord(Frozen):
    """A row of `sweeps`: one sweep, its spec and whether it finished."""

    sweep_id: str
    created_at: datetime
    spec: SweepSpec
    status: str


class SweepItemPlan(Versioned):
    """What one planned fork replay of a sweep will do."""

    run_id: str
    intervention: Intervention
    hypothesis_id: str | None = None
    repeat: int


class SweepItem(Frozen):
    """A row of `sweep_items`: one planned fork replay and its state."""

    item_id: str
    sweep_id: str
    payload: SweepItemPlan
    status: str
    fork_run_id: str | None = None
    updated_at: datetime | None = None


class LLMRecord(Frozen):
    """A row of `llm_records`: one recorded LLM request and its response (record/replay)."""

    request_hash: str
    model: str | None = None
    request: Any = None
    response: Any = None
    created_at: datetime
    schema_version: int = SCHEMA_VERSION


class StepRequest(Frozen):
    """Everything an AgentHost needs to run one agent turn; hosts keep no state between turns
    (a host caches messages by id, but a request it cannot resolve is sent again in full).

    `messages`, when set, replaces `transcript` and `plan` on the wire: the host fills both in
    from it before the turn runs, so a step ships O(1) data however long the run is.
    """

    run_id: str
    team: str
    step: int
    agent: str
    system_prompt: str
    task: Task
    transcript: tuple[Step, ...]
    plan: str | None = None
    directive: str | None = None
    tools: tuple[str, ...] = ()
    model: str
    seed: int = 0
    sample: int = 0
    faults: tuple[Fault, ...] = ()
    trace_carrier: dict[str, str] = Field(default_factory=dict)
    record_mode: Literal["record", "replay"] = "record"
    max_context_steps: int = 12
    calls_model: bool = True  # False: a tool-only turn (runs its tool on the transcript)
    function_tools: tuple[FunctionToolSpec, ...] = ()
    reflect_on_tool_use: bool = False
    model_client: dict[str, Any] | None = None  # the agent's own autogen client component
    selector: SelectorSpec | None = None  # after the turn, pick the next speaker with a model
    select_only: bool = False  # no turn: only pick the next speaker (after an edited step)
    messages: TranscriptRef | None = None
    stop: tuple[str, ...] = ()  # stop sequences of the agent's model calls


class StepResult(Frozen):
    """What one agent turn produced."""

    content: str
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    seconds: float = 0.0
    node_id: str = ""
    next_speaker: str | None = None  # the selector's choice, when the request had a selector


def content_id(prefix: str, payload: Any) -> str:
    """A short stable id for JSON-able content."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
