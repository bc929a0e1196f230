"""LDB runtime traces: a program's basic blocks and its variables' values after each executed block.

After "LDB: A Large Language Model Debugger via Verifying Runtime Execution Step-by-step": a
function is split into basic blocks from its AST (a run of simple statements; the header of an
`if`, loop, `with` or `except`; each nested body in turn). The program then runs on one input in
the sandbox under `sys.settrace`; whenever control leaves a block, the function's local
variables are captured. Loops are summarised (the first visits and the last of each block are
kept, the rest counted) and the whole trace is capped, so it fits a small model's context.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field

from branchpoint.agents.sandbox import run_python

MARKER = "@@LDB@@"
FIRST_VISITS = 2  # visits of a block kept from the start of a loop; the last visit is kept too
MAX_VISITS = 24  # visits kept in the whole trace
VALUE_CHARS = 80
_RAW_CAP = 400  # visits the tracer itself records before it stops recording
# Lines the traced call may execute: a program that never ends is stopped here, inside the
# sandbox's deadline, so its trace (the loop it is stuck in) is still recorded.
MAX_LINES = 20_000


@dataclass(frozen=True)
class Block:
    """One basic block: consecutive source lines of one function that run as a unit."""

    index: int
    function: str
    start: int  # 1-based, inclusive
    end: int
    source: str


@dataclass(frozen=True)
class BlockVisit:
    """The locals of a function right after one execution of a block."""

    block: int
    visit: int  # 1-based count of this block's executions
    depth: int  # recursion depth of the function (1: the outermost call)
    values: dict[str, str]
    returned: str | None = None
    raised: str | None = None


@dataclass(frozen=True)
class BlockTrace:
    """A program's blocks and the visits kept from one traced call."""

    call: str
    blocks: tuple[Block, ...]
    visits: tuple[BlockVisit, ...]
    omitted: int = 0  # visits dropped by the loop summary and the cap
    result: str | None = None
    error: str | None = None
    counts: dict[int, int] = field(default_factory=dict)
    module_error: str | None = None  # the program's own top-level code raised (before the call)

    def render(self, notes: dict[int, str] | None = None, show_code: bool = True) -> str:
        """The trace as text for a judge or an agent: each kept visit, with its block's code
        (once) unless `show_code` is off, and a note per block (e.g. a judge's verdict)."""
        notes = notes or {}
        out = [f"Traced call: {self.call}"]
        if self.module_error is not None:
            out.append(f"Before the call, the program's top-level code raised {self.module_error}")
        shown: set[int] = set()
        for v in self.visits:
            block = self.blocks[v.block]
            header = f"[Block {v.block}] {block.function}, lines {block.start}-{block.end}"
            total = self.counts.get(v.block, v.visit)
            out.append(f"{header} (visit {v.visit} of {total}, depth {v.depth})")
            if v.block not in shown:
                if show_code:
                    out += [f"    {line}" for line in block.source.splitlines()]
                if v.block in notes:
                    out.append(f"  verdict: {notes[v.block]}")
                shown.add(v.block)
            values = ", ".join(f"{k} = {val}" for k, val in v.values.items()) or "(no locals)"
            out.append(f"  values after: {values}")
            if v.returned is not None:
                out.append(f"  returned: {v.returned}")
            if v.raised is not None:
                out.append(f"  raised: {v.raised}")
        if self.omitted:
            out.append(f"({self.omitted} more block visits omitted: loops summarised)")
        out.append(f"Result: {self.result}" if self.error is None else f"Error: {self.error}")
        return "\n".join(out)


def _body_blocks(stmts: list[ast.stmt]) -> list[tuple[int, int]]:
    """Line ranges of the basic blocks of a statement list (nested bodies included)."""
    ranges: list[tuple[int, int]] = []
    run: list[ast.stmt] = []

    def close_run() -> None:
        if run:
            ranges.append((run[0].lineno, run[-1].end_lineno or run[-1].lineno))
            run.clear()

    for stmt in stmts:
        bodies = _nested_bodies(stmt)
        if not bodies:
            run.append(stmt)
            continue
        close_run()
        first_body_line = min(s.lineno for body in bodies for s in body)
        ranges.append((stmt.lineno, max(stmt.lineno, first_body_line - 1)))
        for body in bodies:
            ranges += _body_blocks(body)
    close_run()
    return ranges


def _nested_bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested in a compound statement (functions and classes count as one
    simple statement: their bodies run when called, as their own blocks)."""
    if isinstance(stmt, ast.If | ast.For | ast.AsyncFor | ast.While):
        return [b for b in (stmt.body, stmt.orelse) if b]
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return [stmt.body]
    if isinstance(stmt, ast.Try | ast.TryStar):
        handlers = [h.body for h in stmt.handlers]
        return [b for b in (stmt.body, *handlers, stmt.orelse, stmt.finalbody) if b]
    if isinstance(stmt, ast.Match):
        return [c.body for c in stmt.cases]
    return []


def split_blocks(code: str) -> list[Block]:
    """The basic blocks of every function defined in `code` (nested functions included)."""
    tree = ast.parse(code)
    lines = code.splitlines()
    blocks: list[Block] = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for fn in sorted(functions, key=lambda f: f.lineno):
        for start, end in _body_blocks(fn.body):
            if isinstance(_stmt_at(fn, start), ast.FunctionDef | ast.AsyncFunctionDef):
                continue  # a nested def: its own blocks come with it
            source = "\n".join(lines[start - 1 : end])
            blocks.append(Block(len(blocks), fn.name, start, end, _dedent(source)))
    return blocks


def _stmt_at(fn: ast.AST, line: int) -> ast.stmt | None:
    for node in ast.walk(fn):
        if isinstance(node, ast.stmt) and node is not fn and node.lineno == line:
            return node
    return None


def _dedent(source: str) -> str:
    lines = source.splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


_TRACER = r"""
import json as _json, sys as _sys
_SRC = {src!r}
_LINES = {{int(k): v for k, v in _json.loads({lines!r}).items()}}
_CALL = {call!r}
_visits, _counts, _state = [], {{}}, {{}}
_lines = [0]

class LineBudgetExceeded(Exception):
    pass

def _show(value):
    try:
        text = repr(value)
    except Exception as exc:
        text = "<unrepresentable: %s>" % type(exc).__name__
    return text if len(text) <= {cap} else text[:{cap}] + "..."

def _snap(frame, block, returned=None, raised=None):
    if block is None or len(_visits) >= {raw_cap}:
        return
    _counts[block] = _counts.get(block, 0) + 1
    values = {{k: _show(v) for k, v in frame.f_locals.items() if not k.startswith("__")}}
    depth = _state[id(frame)][1]
    _visits.append([block, _counts[block], depth, values, returned, raised])

def _local(frame, event, arg):
    if event == "line":
        _lines[0] += 1
        if _lines[0] > {max_lines}:
            raise LineBudgetExceeded("stopped after {max_lines} executed lines (an endless loop?)")
        block = _LINES.get(frame.f_lineno)
        last = _state[id(frame)][0]
        if block != last:
            _snap(frame, last)
            _state[id(frame)][0] = block
    elif event == "return":
        _snap(frame, _state[id(frame)][0], returned=_show(arg))
        _state[id(frame)][0] = None
    elif event == "exception":
        _snap(frame, _state[id(frame)][0], raised="%s: %s" % (arg[0].__name__, arg[1]))
        _state[id(frame)][0] = None
    return _local

def _global(frame, event, arg):
    if frame.f_code.co_filename != "<candidate>":
        return None
    depth = 1 + sum(1 for s in _state.values() if s[2] == frame.f_code.co_name)
    _state[id(frame)] = [None, depth, frame.f_code.co_name]
    return _local

_g = {{"__name__": "__candidate__"}}
_module_error = None
try:  # the program's own top-level code (e.g. an example call it left in) may raise
    exec(compile(_SRC, "<candidate>", "exec"), _g)
except Exception as _exc:
    _module_error = "%s: %s" % (type(_exc).__name__, _exc)
_result, _error = None, None
_sys.settrace(_global)
try:
    _result = _show(eval(compile(_CALL, "<call>", "eval"), _g))
except BaseException as _exc:
    _error = "%s: %s" % (type(_exc).__name__, _exc)
finally:
    _sys.settrace(None)
# Loops summarised: the first visits and the last of each block, plus any visit that raised;
# then at most {max_visits} in all (the start and the end). One line each, so a capped output
# still yields whole visits.
_kept = [v for v in _visits if v[1] <= {first} or v[1] == _counts[v[0]] or v[5] is not None]
if len(_kept) > {max_visits}:
    _kept = _kept[:{max_visits} // 2] + _kept[-({max_visits} - {max_visits} // 2):]
for _v in _kept:
    print({marker!r} + _json.dumps({{"visit": _v}}))
print({marker!r} + _json.dumps({{"result": _result, "error": _error, "counts": _counts,
                                 "recorded": len(_visits), "module_error": _module_error}}))
"""


def tracer_program(code: str, call: str, blocks: list[Block]) -> str:
    """The script that runs `call` against `code` under the block tracer and prints the trace."""
    lines = {line: b.index for b in blocks for line in range(b.start, b.end + 1)}
    return _TRACER.format(
        src=code,
        lines=json.dumps(lines),
        call=call,
        cap=VALUE_CHARS,
        raw_cap=_RAW_CAP,
        first=FIRST_VISITS,
        max_lines=MAX_LINES,
        max_visits=MAX_VISITS,
        marker=MARKER,
    )


def trace_blocks(code: str, call: str, timeout_s: float = 10.0) -> BlockTrace:
    """Run `call` (an expression such as `add(2, 3)`) against `code` in the sandbox, traced."""
    try:
        blocks = split_blocks(code)
    except SyntaxError as exc:
        return BlockTrace(call, (), (), error=f"SyntaxError: {exc.msg} (line {exc.lineno})")
    output = run_python(tracer_program(code, call, blocks), timeout_s=timeout_s).output
    rows = [json.loads(x[len(MARKER) :]) for x in output.splitlines() if x.startswith(MARKER)]
    end = next((r for r in rows if "result" in r), None)
    if end is None:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        return BlockTrace(
            call, tuple(blocks), (), error=f"the traced run did not finish: {tail[0]}"
        )
    visits = tuple(
        BlockVisit(int(v[0]), int(v[1]), int(v[2]), dict(v[3]), v[4], v[5])
        for v in (r["visit"] for r in rows if "visit" in r)
    )
    counts = {int(k): int(n) for k, n in end["counts"].items()}
    return BlockTrace(
        call,
        tuple(blocks),
        visits,
        int(end["recorded"]) - len(visits),
        end["result"],
        end["error"],
        counts,
        end.get("module_error"),
    )
