"""The `code` team for HumanEval-style tasks: a Coder writes the function, a Tester runs it.

The Tester is a tool turn (no model): it runs the docstring's visible examples in the sandbox
(`tasks.visible_examples`, never the hidden tests). On a failure the Coder sees the failing
example's output and writes the function again, up to MAX_ATTEMPTS programs; the run is scored
on the task's hidden tests (`score_code`). A failing example is also run under the LDB block
tracer, and its block visits are recorded as events of the Tester's tool span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from branchpoint.agents.ldb import BlockTrace, trace_blocks
from branchpoint.agents.sandbox import CLOSING_FENCE, TEST_TIMEOUT_S, run_humaneval, run_python
from branchpoint.agents.teams import Advance, AgentSpec, TeamSpec, prompt_text, register_team
from branchpoint.agents.tool_turns import SpanEvent, ToolTurn, latest_program, register_tool_turn
from branchpoint.model import Step, Task, ToolCall
from branchpoint.tasks import Example, visible_examples

MAX_ATTEMPTS = 3
PASSED = "PASSED"
FAILED = "FAILED"
VISIBLE_EXAMPLES = "visible_examples"
_MARK = "@@EXAMPLE@@"
_RENDER_CHARS = 4000

_CHECKER = """

import json as _json, math as _math
def _same(got, expected):
    if isinstance(got, float) or isinstance(expected, float):
        try:
            return _math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(_same(a, b) for a, b in zip(got, expected))
    return got == expected
for _i, (_call, _expected) in enumerate({examples!r}):
    try:
        _got = eval(_call)
        _ok = _same(_got, eval(_expected))
        _shown = repr(_got)
    except BaseException as _exc:
        _ok, _shown = False, "raised %s: %s" % (type(_exc).__name__, _exc)
    print({mark!r} + _json.dumps([_i, _ok, _shown[:300]]))
"""


def examples_program(code: str, examples: list[Example]) -> str:
    """The script that defines the code, then evaluates each example and prints one line each."""
    pairs = [(e.call, e.expected) for e in examples]
    return code + _CHECKER.format(examples=pairs, mark=_MARK)


def _example_rows(output: str) -> list[list[Any]]:
    """The [index, passed, shown] rows the examples program printed."""
    return [json.loads(x[len(_MARK) :]) for x in output.splitlines() if x.startswith(_MARK)]


def _last_program(steps: Sequence[Step]) -> str | None:
    """The newest program the Coder wrote in the run, if any."""
    programs = [p for s in steps if s.agent == "Coder" and (p := latest_program(s.content))]
    return programs[-1] if programs else None


def _verdict_text(examples: list[Example], output: str, ok: bool) -> tuple[str, Example | None]:
    """The Tester's message and the first failing example (None when all pass)."""
    rows = _example_rows(output)
    if not examples:
        if ok:
            return f"{PASSED}: the code runs (the task shows no examples to check).", None
        return f"{FAILED}: the code does not run.\n{output[-1500:]}", None
    for i, passed, shown in rows:
        if not passed:
            ex = examples[i]
            return (
                f"{FAILED}: example {i + 1} of {len(examples)}: {ex.call} gave {shown}, "
                f"expected {ex.expected}."
            ), ex
    if len(rows) < len(examples):
        ex = examples[len(rows)]
        return f"{FAILED}: the code did not finish example {len(rows) + 1}: {ex.call}.\n" + (
            output[-1500:]
        ), ex
    return f"{PASSED}: all {len(examples)} visible examples give the expected values.", None


def examples_passed(task: Task, steps: Sequence[Step]) -> int:
    """How many of the task's visible examples the run's last program passes (run in the
    sandbox): a code run's milestone count."""
    program, examples = _last_program(steps), visible_examples(task)
    if program is None or not examples:
        return 0
    rows = _example_rows(
        run_python(examples_program(program, examples), timeout_s=TEST_TIMEOUT_S).output
    )
    return sum(1 for _, passed, _ in rows if passed)


def trace_events(trace: BlockTrace) -> list[SpanEvent]:
    """LDB block visits as span events (`ldb.block` per kept visit, then `ldb.trace`)."""
    events: list[SpanEvent] = []
    for v in trace.visits:
        block = trace.blocks[v.block]
        events.append(
            (
                "ldb.block",
                {
                    "ldb.block": v.block,
                    "ldb.visit": v.visit,
                    "ldb.depth": v.depth,
                    "ldb.function": block.function,
                    "ldb.lines": f"{block.start}-{block.end}",
                    "ldb.source": block.source,
                    "ldb.values": json.dumps(v.values),
                    **({"ldb.returned": v.returned} if v.returned is not None else {}),
                    **({"ldb.raised": v.raised} if v.raised is not None else {}),
                },
            )
        )
    summary = {
        "ldb.call": trace.call,
        "ldb.blocks": len(trace.blocks),
        "ldb.omitted": trace.omitted,
        "ldb.result": trace.result or "",
        "ldb.error": trace.error or "",
        "ldb.rendered": trace.render()[:_RENDER_CHARS],
    }
    return [*events, ("ldb.trace", summary)]


@register_tool_turn(VISIBLE_EXAMPLES)
def run_visible_examples(message: str, task: Task) -> ToolTurn:
    """The Tester's turn: run the visible examples; on a failure, trace it block by block."""
    code = latest_program(message)
    if code is None:
        text = f"{FAILED}: no code block to test. Write the function in one ```python block."
        return ToolTurn(ToolCall(tool=VISIBLE_EXAMPLES, input="", output=text, ok=False))
    examples = visible_examples(task)
    result = run_python(examples_program(code, examples), timeout_s=TEST_TIMEOUT_S)
    text, failing = _verdict_text(examples, result.output, result.ok)
    call = ToolCall(
        tool=VISIBLE_EXAMPLES,
        input=code,
        output=text,
        ok=text.startswith(PASSED),
        seconds=result.seconds,
    )
    events = (
        trace_events(trace_blocks(code, failing.call, timeout_s=TEST_TIMEOUT_S))
        if failing is not None
        else []
    )
    return ToolTurn(call, events)


def _code_advance(state: Mapping[str, Any], agent: str, content: str) -> Advance:
    attempts = int(state.get("stall") or 0)
    if agent == "Coder":
        return Advance(kind="message", next="Tester", stall=attempts)
    if content.startswith(PASSED):
        return Advance(kind="final", next=None, done=True, stall=attempts)
    attempts += 1  # one more program failed its examples
    return Advance(kind="tool_result", next="Coder", done=attempts >= MAX_ATTEMPTS, stall=attempts)


def score_code(task: Task, final_answer: str | None, steps: list[Step]) -> bool:
    """A code run succeeds when its last program passes the task's hidden tests."""
    program = _last_program(steps)
    if program is None or not task.test or not task.entry_point:
        return False
    return run_humaneval(program, task.test, task.entry_point, timeout_s=TEST_TIMEOUT_S)


def _code_prompt(state: Mapping[str, Any], agent: str) -> str | None:
    return prompt_text("code_coder") if agent == "Coder" else None


CODE = TeamSpec(
    name="code",
    agents=(
        AgentSpec("Coder", "code_coder", stop=(CLOSING_FENCE,)),
        AgentSpec("Tester", None, tools=(VISIBLE_EXAMPLES,)),
    ),
    first="Coder",
    advance=_code_advance,
    prompt_for=_code_prompt,
    score=score_code,
)
register_team(CODE)
