"""The `ldb` hypothesis method and the `runtime_trace` intervention (after LDB, Zhong et al. 2024).

A failed run's first program (a code task's function, or a program-of-thought Solver's script) is
run on a failing input under the block tracer (`agents/ldb.py`). A judge verifies the blocks one
by one against the task and names the first wrong block: that is the hypothesis (the agent and
step that wrote the program, the block and the reason). The matching intervention re-runs that
step with the trace and the verdicts, the old program withheld.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from branchpoint.agents.ldb import BlockTrace, trace_blocks
from branchpoint.agents.sandbox import TEST_TIMEOUT_S
from branchpoint.agents.tool_turns import latest_program
from branchpoint.interventions.attribution import AttributionResult, Evidence, register
from branchpoint.interventions.judge import Judge, ask_json, parse_step_index, render_prompt
from branchpoint.model import Hypothesis, Run, RuntimeTrace, Step
from branchpoint.tasks import visible_examples

PROGRAM_FUNCTION = "solve"  # a script without functions is traced as the body of solve()
_FAILED_EXAMPLE = re.compile(r"FAILED: example (\d+) of \d+: .* gave (.*), expected .*\.$")
MAX_TRACE_CHARS = 5000


@dataclass(frozen=True)
class TracedProgram:
    """One program of a run, traced on one input, and what it should have given."""

    step: Step
    code: str
    trace: BlockTrace
    expected: str
    feedback: str  # one line for the agent: what went wrong on this input (never the answer)


@dataclass
class LdbResult:
    """The ldb method's hypotheses, the traced program and per-block verdicts, or failures."""

    hypotheses: list[Hypothesis] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    traced: TracedProgram | None = None
    verdicts: dict[int, str] = field(default_factory=dict)


def program_steps(steps: Sequence[Step]) -> list[tuple[Step, str]]:
    """Model turns that wrote a program, with the program (their last code block); a block of
    comments alone is not a program (the 0.5B Solver writes such blocks)."""
    found = []
    for step in steps:
        program = latest_program(step.content) if step.kind != "tool_result" else None
        if program and has_statements(program):
            found.append((step, program))
    return found


def has_statements(code: str) -> bool:
    """Whether `code` holds a statement (a program that does not parse counts: its trace says
    why it fails)."""
    try:
        return bool(ast.parse(code).body)
    except (SyntaxError, ValueError):
        return True


def as_function(code: str) -> str:
    """A script as the body of `solve()`, so its blocks can be traced like a function's."""
    return f"def {PROGRAM_FUNCTION}():\n{textwrap.indent(code, '    ')}\n"


def trace_program(run: Run, steps: Sequence[Step], step: Step, code: str) -> TracedProgram:
    """Trace `code` (written at `step`) on the input it failed: the failing visible example of a
    code task, else its first example; a script runs as `solve()` against the answer."""
    task = run.task
    if not task.entry_point:
        trace = trace_blocks(as_function(code), f"{PROGRAM_FUNCTION}()")
        ended = trace.error or "the values below"
        feedback = f"It ended with {ended}, which does not answer the question correctly."
        return TracedProgram(step, code, trace, task.answer or "(unknown)", feedback)
    examples = visible_examples(task)
    reply = next((s.content for s in steps if s.index == step.index + 1), "")
    failed = _FAILED_EXAMPLE.search(reply)
    index = int(failed.group(1)) - 1 if failed else 0
    if not examples:
        call, expected = f"{task.entry_point}()", "(the task shows no example)"
    else:
        call, expected = examples[min(index, len(examples) - 1)]
    trace = trace_blocks(code, call, timeout_s=TEST_TIMEOUT_S)
    got = trace.error or trace.result
    feedback = (
        f"On {call} it gave {got}; the task says {expected}."
        if failed or not examples
        else f"It gives {got} on {call} as the task says, but fails other tests of the task."
    )
    return TracedProgram(step, code, trace, expected, feedback)


def _verdict_parser(trace: BlockTrace) -> Any:
    kept = {v.block for v in trace.visits}

    def parse(reply: dict[str, Any]) -> tuple[int, str, dict[int, str]]:
        block = parse_step_index(reply["first_wrong_block"])
        if block is None or block not in kept:
            raise ValueError(f"first_wrong_block must be one of the traced blocks {sorted(kept)}")
        reason = str(reply.get("reason") or "").strip() or "its values are wrong for the task"
        verdicts: dict[int, str] = {}
        for item in reply.get("blocks") or []:
            number = parse_step_index(item.get("block")) if isinstance(item, dict) else None
            if number in kept:
                ok = item.get("correct") is True
                note = str(item.get("explanation") or "").strip()
                verdicts[number] = ("correct" if ok else "WRONG") + (f": {note}" if note else "")
        verdicts[block] = f"WRONG (first wrong block): {reason}"
        return block, reason, verdicts

    return parse


def ldb_hypothesis(run: Run, steps: Sequence[Step], judge: Judge) -> LdbResult:
    """Verify the run's first program block by block; the first wrong block is the hypothesis.
    A program that does not parse, or that ran one block, is blamed without asking the judge."""
    result = LdbResult()
    programs = program_steps(steps)
    if not programs:
        result.failures.append("no program in the run to trace")
        return result
    step, code = programs[0]
    traced = trace_program(run, steps, step, code)
    result.traced = traced
    if not traced.trace.visits:
        if (traced.trace.error or "").startswith("SyntaxError"):  # wrong before any block ran
            reason = f"The program does not parse ({traced.trace.error})."
            result.hypotheses.append(_program_hypothesis(run, traced, reason))
            return result
        result.failures.append(f"the program could not be traced ({traced.trace.error})")
        return result
    ran = {v.block for v in traced.trace.visits}
    if len(ran) == 1:  # one block ran: it is the first wrong one, no judge can say otherwise
        (only,) = ran
        result.verdicts = {only: f"WRONG (the only block that ran): {traced.feedback}"}
        result.hypotheses.append(_block_hypothesis(run, traced, only, traced.feedback))
        return result
    system, user = render_prompt(
        "ldb_verify",
        question=run.task.question,
        call=traced.trace.call,
        got=traced.trace.error or traced.trace.result,
        expected=traced.expected,
        trace=traced.trace.render()[:MAX_TRACE_CHARS],
    )
    failures: list[str] = []
    verdict = ask_json(judge, system, user, _verdict_parser(traced.trace), failures=failures)
    if verdict is None:
        result.failures.append(failures[-1] if failures else "no usable reply")
        return result
    block, reason, result.verdicts = verdict
    result.hypotheses.append(_block_hypothesis(run, traced, block, reason))
    return result


def _block_hypothesis(run: Run, traced: TracedProgram, block: int, reason: str) -> Hypothesis:
    """The hypothesis that `block` of the traced program is the first wrong one."""
    b = traced.trace.blocks[block]
    return _program_hypothesis(
        run, traced, f"Block {block} (lines {b.start}-{b.end}, {b.function}): {reason}"
    )


def _program_hypothesis(run: Run, traced: TracedProgram, reason: str) -> Hypothesis:
    """The hypothesis that the traced program's step is wrong, for `reason`."""
    return Hypothesis(
        run_id=run.run_id,
        agent=traced.step.agent,
        step=traced.step.index,
        reason=reason,
        method="ldb",
    )


def runtime_trace(traced: TracedProgram, verdicts: dict[int, str] | None = None) -> RuntimeTrace:
    """The `runtime_trace` intervention at the program's step: the block-level trace with the
    verdicts, and the old program withheld (only its variables' values are shown)."""
    body = traced.trace.render(notes=verdicts or {}, show_code=False)[:MAX_TRACE_CHARS]
    text = (
        "Your previous program for this task was wrong; it is not shown to you. "
        f"{traced.feedback} A debugger ran it block by block; the values of its variables "
        f"after each block were:\n{body}\n"
        "Write a new program from scratch that does what the task asks, avoiding the mistake "
        "the wrong block shows."
    )
    return RuntimeTrace(step=traced.step.index, trace=text)


def runtime_trace_at(
    run: Run, steps: Sequence[Step], step: int, reason: str | None = None
) -> RuntimeTrace | None:
    """The `runtime_trace` intervention for the program written at `step` (None when that step
    wrote none). A reason that names a block ("Block 2 ...", as `ldb` writes) becomes that
    block's verdict in the trace."""
    program = next(((s, c) for s, c in program_steps(steps) if s.index == step), None)
    if program is None:
        return None
    traced = trace_program(run, steps, *program)
    if not traced.trace.visits:
        return None
    named = re.match(r"Block (\d+)\b", reason or "")
    notes = {int(named.group(1)): f"WRONG: {reason}"} if named else {}
    return runtime_trace(traced, notes)


@register("ldb", needs_judge=True)
def _ldb_method(e: Evidence) -> AttributionResult:
    """The registry's entry: the `ldb` hypothesis, or why there is none."""
    if e.judge is None:
        return AttributionResult([], ["ldb needs a judge model (--judge)"])
    found = ldb_hypothesis(e.run, e.steps, e.judge)
    return AttributionResult(found.hypotheses, found.failures)
