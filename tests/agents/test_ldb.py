"""LDB: basic blocks from the AST, and the sandboxed block tracer (loops, branches, exceptions,
recursion)."""

from __future__ import annotations

from branchpoint.agents.ldb import FIRST_VISITS, split_blocks, trace_blocks

LOOP = """\
def total(xs):
    s = 0
    for x in xs:
        if x % 2:
            s += x
        else:
            s -= 1
    return s
"""

RAISES = """\
def parse(text):
    parts = text.split(",")
    try:
        n = int(parts[1])
    except IndexError:
        n = -1
    return 10 // n
"""

RECURSIVE = """\
def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)
"""


def test_blocks_split_at_branches_and_loops() -> None:
    blocks = split_blocks(LOOP)
    assert [(b.start, b.end, b.source) for b in blocks] == [
        (2, 2, "s = 0"),
        (3, 3, "for x in xs:"),
        (4, 4, "if x % 2:"),
        (5, 5, "s += x"),
        (7, 7, "s -= 1"),
        (8, 8, "return s"),
    ]
    assert {b.function for b in blocks} == {"total"}


def test_blocks_of_try_except_and_several_functions() -> None:
    blocks = split_blocks(RAISES + "\n" + RECURSIVE)
    sources = [b.source for b in blocks]
    assert sources[:5] == ['parts = text.split(",")', "try:", "n = int(parts[1])", "n = -1",
                           "return 10 // n"]  # fmt: skip
    assert [b.function for b in blocks].count("fact") == 3


def test_consecutive_simple_statements_form_one_block() -> None:
    blocks = split_blocks("def f(a):\n    b = a + 1\n    c = b * 2\n    return c\n")
    assert [(b.start, b.end) for b in blocks] == [(2, 4)]


def test_loop_trace_keeps_first_and_last_visits_with_values() -> None:
    trace = trace_blocks(LOOP, "total([1, 2, 3, 4, 5, 6, 7, 8])")
    assert trace.result == "12" and trace.error is None
    loop_block = 1
    visits = [v for v in trace.visits if v.block == loop_block]
    assert [v.visit for v in visits] == [*range(1, FIRST_VISITS + 1), trace.counts[loop_block]]
    assert visits[0].values == {"xs": "[1, 2, 3, 4, 5, 6, 7, 8]", "s": "0", "x": "1"}
    assert trace.omitted > 0
    last = trace.visits[-1]
    assert last.returned == "12" and last.values["s"] == "12"
    assert "loops summarised" in trace.render()


def test_exception_is_recorded_at_the_block_that_raised() -> None:
    trace = trace_blocks(RAISES, 'parse("7,0")')
    assert trace.error == "ZeroDivisionError: integer division or modulo by zero"
    raised = [v for v in trace.visits if v.raised]
    assert raised and trace.blocks[raised[0].block].source == "return 10 // n"
    handled = trace_blocks(RAISES, 'parse("7")')
    sources = [handled.blocks[v.block].source for v in handled.visits]
    assert "n = -1" in sources  # the except branch ran
    assert handled.result == "-10" and handled.error is None
    caught = [handled.blocks[v.block].source for v in handled.visits if v.raised]
    assert caught == ["n = int(parts[1])"]


def test_recursion_depth_is_tracked() -> None:
    trace = trace_blocks(RECURSIVE, "fact(3)")
    assert trace.result == "6"
    returns = [(v.depth, v.returned) for v in trace.visits if v.returned is not None]
    assert returns == [(3, "1"), (2, "2"), (1, "6")]


def test_an_endless_loop_is_stopped_and_still_traced() -> None:
    trace = trace_blocks("def f(x):\n    while True:\n        x += 1\n", "f(1)")
    assert trace.error is not None and "LineBudgetExceeded" in trace.error
    assert {trace.blocks[v.block].source for v in trace.visits} == {"while True:", "x += 1"}


def test_a_syntax_error_is_reported_without_running() -> None:
    trace = trace_blocks("def f(:\n  pass\n", "f()")
    assert trace.blocks == () and trace.error is not None and "SyntaxError" in trace.error


def test_a_program_whose_own_example_call_raises_is_still_traced() -> None:
    # HumanEval/17 from the 0.5B Coder: an example call left at the end raised at load time,
    # which lost the whole trace ("the traced run did not finish").
    code = (
        "def beats(s):\n"
        "    out = []\n"
        "    for note in s.split():\n"
        "        if note == 'o':\n"
        "            out.append(4)\n"
        "        else:\n"
        "            raise ValueError('Invalid note: ' + note)\n"
        "    return out\n"
        "\n"
        "print(beats('o .|'))\n"
    )
    trace = trace_blocks(code, "beats('o .|')")
    assert trace.module_error == "ValueError: Invalid note: .|"
    assert trace.error == "ValueError: Invalid note: .|" and trace.visits
    assert "top-level code raised ValueError" in trace.render()
    assert (
        trace_blocks(code.replace("print(beats('o .|'))\n", ""), "beats('o')").module_error is None
    )
