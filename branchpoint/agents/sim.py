"""The `sim` backend: a simulated `math` team with seeded, injectable faults.

The simulated agents solve a task by following its worked solution (GSM8K `<<a*b=c>>` chains),
one plan item per Solver turn, reading earlier values from the transcript so that an error
propagates like a real one. Injected faults are the ground truth a debugger is measured against.
A fault always fires in the original run (sample 0); when its step is re-sampled in a fork it
fires again with probability `recurrence`; an instruction at its step suppresses it.
"""

from __future__ import annotations

import ast
import asyncio
import bisect
import functools
import hashlib
import operator
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_core.models import (
    CreateResult,
    LLMMessage,
    RequestUsage,
)

from branchpoint.agents.chat_client import TextChatClient
from branchpoint.agents.transcripts import PrefixFold
from branchpoint.model import Fault, Step, Task
from branchpoint.tasks import chain_of, numbers_in, same_number, solution_chain

CONTINUE = "CONTINUE"
# Part of every sim request's record hash: bump it when the simulated agents change behaviour,
# so recorded answers of the old simulation are not replayed as the new one's.
SIM_VERSION = 3
_ITEM = re.compile(r"^Item (\d+): (.+?) = (-?[\d.]+)", re.MULTILINE)
_PLAN_LINE = re.compile(r"^\s*(\d+)\.", re.MULTILINE)
_REJECT = re.compile(r"Item (\d+) is wrong")
# What `evaluate` raises for an expression it cannot compute.
NOT_ARITHMETIC = (ValueError, SyntaxError, ZeroDivisionError)
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@dataclass(frozen=True)
class SimContext:
    """What the simulated agent acting at one step knows besides the transcript."""

    task: Task
    agent: str
    step: int
    faults: tuple[Fault, ...]
    seed: int
    sample: int
    transcript: tuple[Step, ...]
    plan: str | None
    directive: str | None
    latency_s: float = 0.0


@functools.lru_cache(maxsize=65536)
def evaluate(expr: str) -> float:
    """Evaluate an arithmetic expression (+ - * / and parentheses) without eval()."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ValueError(f"not arithmetic: {expr}")

    return walk(ast.parse(expr.replace(",", ""), mode="eval"))


def fmt(value: float) -> str:
    """Numbers as a person writes them: 12 not 12.0, at most 4 decimals."""
    return str(round(value)) if abs(value - round(value)) < 1e-9 else f"{value:.4f}".rstrip("0")


def sim_solvable(task: Task) -> bool:
    """The sim can solve a task whose calculator chain evaluates and ends in its answer."""
    chain = solution_chain(task)
    if not chain or task.answer is None:
        return False
    try:
        values = [evaluate(expr) for expr, _ in chain]
    except NOT_ARITHMETIC:
        return False
    return all(same_number(v, c) for v, (_, c) in zip(values, chain, strict=True)) and same_number(
        chain[-1][1], numbers_in(task.answer)[0] if numbers_in(task.answer) else None
    )


def fault_fires(ctx: SimContext, kind: str | None = None) -> Fault | None:
    """The fault injected at this step, if it fires in this sample."""
    if ctx.directive:
        return None
    for fault in ctx.faults:
        if fault.step != ctx.step or fault.agent != ctx.agent or (kind and fault.kind != kind):
            continue
        if ctx.sample == 0:
            return fault
        rng = random.Random(f"{ctx.seed}:{ctx.sample}:{ctx.step}")
        return fault if rng.random() < fault.recurrence else None
    return None


def planned_items(plan: str | None) -> list[int]:
    """Item numbers (1-based) a plan lists."""
    return list(_planned_items(plan or ""))


@functools.lru_cache(maxsize=1024)
def _planned_items(plan: str) -> tuple[int, ...]:
    return tuple(int(n) for n in _PLAN_LINE.findall(plan))


@dataclass(frozen=True)
class Ledger:
    """What a transcript's Solver messages add up to: the latest (expression, value) of each item,
    the items whose arithmetic is wrong, and the highest item number."""

    done: Mapping[int, tuple[str, float]]
    wrong: frozenset[int] = frozenset()
    top: int | None = None

    def add(self, step: Step) -> Ledger:
        """The ledger after one more step (a copy when the step is a Solver's with items)."""
        items = _solver_items(step.content) if step.agent == "Solver" else ()
        if not items:
            return self
        done, wrong = dict(self.done), set(self.wrong)
        for number, (expr, value) in items:
            done[number] = (expr, value)
            wrong.discard(number)
            if not _right(expr, value):
                wrong.add(number)
        top = max(number for number, _ in items)
        return Ledger(done, frozenset(wrong), top if self.top is None else max(self.top, top))


def _right(expr: str, value: float) -> bool:
    """Whether `expr` evaluates to `value` (an expression that is not arithmetic is wrong)."""
    try:
        return same_number(evaluate(expr), value)
    except NOT_ARITHMETIC:
        return False


def _digest_step(digest: str, step: Step) -> str:
    return hashlib.sha256(f"{digest}\x00{step.content}".encode()).hexdigest()


# Folds over a transcript that reuse the value of its prefix: a turn costs its new steps, not the
# run's length (the transcripts a host resolves share their Step objects from turn to turn).
_LEDGERS: PrefixFold[Ledger] = PrefixFold(Ledger({}), Ledger.add)
_DIGESTS: PrefixFold[str] = PrefixFold("", _digest_step)


def ledger(transcript: Sequence[Step]) -> Ledger:
    """The Solver's ledger of a transcript."""
    return _LEDGERS(transcript)


def done_items(transcript: Sequence[Step]) -> Mapping[int, tuple[str, float]]:
    """Latest (expression, value) the Solver wrote for each item."""
    return _LEDGERS(transcript).done


def transcript_digest(transcript: Sequence[Step]) -> str:
    """A SHA-256 chain over the steps' contents: what a sim request's hash covers of the
    transcript (the contents, in order) at the cost of the new steps only."""
    return _DIGESTS(transcript)


@functools.lru_cache(maxsize=65536)
def _solver_items(content: str) -> tuple[tuple[int, tuple[str, float]], ...]:
    """The items one Solver message states (parsed once per message, not once per turn)."""
    return tuple((int(n), (expr, float(value))) for n, expr, value in _ITEM.findall(content))


@functools.lru_cache(maxsize=256)
def _values_in_order(solution: str) -> tuple[list[float], list[int]]:
    """The chain's values sorted, and the item index of each: finds an earlier result by value."""
    chain = chain_of(solution)
    order = sorted(range(len(chain)), key=lambda j: chain[j][1])
    return [chain[j][1] for j in order], order


def _first_item_with_value(solution: str, value: float) -> int | None:
    """The lowest index j with `same_number(value, chain[j][1])` (a bisection, not a scan)."""
    values, order = _values_in_order(solution)
    slack = 2e-4 * max(1.0, abs(value)) + 1e-9  # wider than same_number's tolerance
    lo = bisect.bisect_left(values, value - slack)
    hi = bisect.bisect_right(values, value + slack)
    found = [order[i] for i in range(lo, hi) if same_number(value, values[i])]
    return min(found) if found else None


def _substitute(expr: str, index: int, solution: str, done: Mapping[int, tuple[str, float]]) -> str:
    """Replace references to earlier results by the values this run actually computed.

    A number in `expr` that equals the ground-truth result of an earlier item j (the first such
    j) becomes the value this run computed for item j+1, or, when item j+1 was never computed,
    the latest value computed before it (0 when none was).
    """

    def computed(j: int) -> float:
        if j + 1 in done:
            return done[j + 1][1]
        return next((done[m][1] for m in range(j, 0, -1) if m in done), 0.0)

    def swap(match: re.Match[str]) -> str:
        j = _first_item_with_value(solution, float(match.group(0).replace(",", "")))
        return fmt(computed(j)) if j is not None and j < index else match.group(0)

    return re.sub(r"\d[\d,]*(?:\.\d+)?", swap, expr)


def _wrong_operand(expr: str) -> str:
    """Perturb the first literal operand so the result changes."""
    match = re.search(r"\d+(?:\.\d+)?", expr)
    if match is None:
        return expr
    bumped = fmt(float(match.group(0)) + 1)
    return expr[: match.start()] + bumped + expr[match.end() :]


def planner_turn(ctx: SimContext) -> str:
    """A numbered plan, one item per calculator step; `skip_plan_item` drops one."""
    chain = solution_chain(ctx.task)
    items = list(range(1, len(chain) + 1))
    if fault_fires(ctx, "skip_plan_item") and len(items) > 1:
        items.remove(items[random.Random(ctx.seed).randrange(len(items))])
    lines = [f"{i}. Compute {chain[i - 1][0]} using the values found so far." for i in items]
    prefix = "(Re-planned as instructed.)\n" if ctx.directive else ""
    return prefix + "Plan:\n" + "\n".join(lines)


def solver_turn(ctx: SimContext) -> str:
    """Compute the next planned item (or redo one the Verifier rejected)."""
    solution = ctx.task.solution or ""
    chain = chain_of(solution)
    done = done_items(ctx.transcript)
    plan = planned_items(ctx.plan)
    last = ctx.transcript[-1] if ctx.transcript else None
    rejected = _REJECT.search(last.content) if last and last.agent == "Verifier" else None
    todo = [i for i in plan if i not in done and 1 <= i <= len(chain)]
    prefix = "(Re-checked as instructed.)\n" if ctx.directive else ""
    fault = fault_fires(ctx)
    if fault and fault.kind == "ignore_instruction":
        return prefix + "I have finished all the calculations."
    if rejected:
        item = int(rejected.group(1))
    elif todo:
        item = todo[0]
    else:
        return prefix + "All planned items are done."
    expr = _substitute(chain[item - 1][0], item - 1, solution, done)
    if fault and fault.kind == "wrong_operand":
        expr = _wrong_operand(expr)
    value = evaluate(expr)
    if fault and fault.kind == "arithmetic_error":
        value += 1
    more = any(i != item for i in todo)
    return prefix + f"Item {item}: {expr} = {fmt(value)}" + (f"\n{CONTINUE}" if more else "")


def verifier_turn(ctx: SimContext) -> str:
    """Check each item's arithmetic; send a wrong one back, else state the final answer."""
    book = ledger(ctx.transcript)
    accept = fault_fires(ctx, "accept_wrong") is not None
    if book.wrong and not accept:
        item = min(book.wrong)
        expr, value = book.done[item]
        return f"Item {item} is wrong: {expr} is not {fmt(value)}. Please recompute item {item}."
    if book.top is None:
        return "No calculations were done. Please solve the plan."
    return f"FINAL ANSWER: {fmt(book.done[book.top][1])}"


TURNS = {"Planner": planner_turn, "Solver": solver_turn, "Verifier": verifier_turn}


class SimChatCompletionClient(TextChatClient):
    """An autogen chat-completion client whose answers come from the simulated team."""

    def __init__(self, ctx: SimContext) -> None:
        super().__init__()
        self.ctx = ctx

    async def create(
        self, messages: Sequence[LLMMessage], *, extra_create_args: Mapping[str, Any] = {}, **_: Any
    ) -> CreateResult:
        """The simulated agent's turn; token counts are word counts."""
        if self.ctx.latency_s:
            await asyncio.sleep(self.ctx.latency_s)
        turn = TURNS.get(self.ctx.agent)
        content = turn(self.ctx) if turn else f"{self.ctx.agent} has nothing to add."
        usage = RequestUsage(
            prompt_tokens=sum(word_count(str(getattr(m, "content", ""))) for m in messages),
            completion_tokens=len(content.split()),
        )
        self._account(usage)
        return CreateResult(finish_reason="stop", content=content, usage=usage, cached=False)


@functools.lru_cache(maxsize=4096)
def word_count(text: str) -> int:
    """Words in a text (the sim's token count; the plan is counted once, not on every turn)."""
    return len(text.split())


# The chance an injected fault recurs when its step is re-sampled, for `run --model sim`. At 1.0
# every resample repeats the fault, V(k) is flat zero and the value curve has nothing to find;
# at 0.5 trying again sometimes works, so `debug --failed` finds the step and an intervention
# that suppresses the fault beats its resample controls.
DEFAULT_RECURRENCE = 0.5


def random_fault(task: Task, rng: random.Random, recurrence: float = DEFAULT_RECURRENCE) -> Fault:
    """One fault at a step the sim team will reach: a Planner skip or a Solver mistake."""
    n_items = len(solution_chain(task))
    kinds = ["wrong_operand", "ignore_instruction"] + (["skip_plan_item"] if n_items > 1 else [])
    kind = rng.choice(kinds)
    if kind == "skip_plan_item":
        return Fault(agent="Planner", step=0, kind="skip_plan_item", recurrence=recurrence)
    return Fault(agent="Solver", step=rng.randint(1, n_items), kind=kind, recurrence=recurrence)  # type: ignore[arg-type]
