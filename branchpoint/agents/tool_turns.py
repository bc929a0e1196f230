"""Tool turns: agents that call no model but run a tool on the latest message (a registry).

A team gives such an agent `prompt=None` and, as its first tool, the name of a registered tool
turn. The host passes the message the agent answers and the task; the turn returns the tool call
(its output becomes the step's content) and span events to record under the tool span (e.g. LDB
block traces).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from branchpoint.agents.sandbox import extract_code_blocks
from branchpoint.model import Task, ToolCall

SpanEvent = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class ToolTurn:
    """What one tool turn did: the call (content = its output) and events for its span."""

    call: ToolCall
    events: list[SpanEvent] = field(default_factory=list)


ToolTurnFn = Callable[[str, Task], ToolTurn]
TOOL_TURNS: dict[str, ToolTurnFn] = {}
# Modules whose import registers built-in tool turns. A host never looks its team up, so it may
# not have imported them: `find_tool_turn` does on a miss.
BUILTIN_MODULES = ("branchpoint.agents.code_team", "branchpoint.agents.pot_team")


def register_tool_turn(name: str) -> Callable[[ToolTurnFn], ToolTurnFn]:
    """Register a tool turn under `name` (the agent's first tool)."""

    def register(fn: ToolTurnFn) -> ToolTurnFn:
        TOOL_TURNS[name] = fn
        return fn

    return register


def find_tool_turn(tools: tuple[str, ...]) -> tuple[str, ToolTurnFn] | None:
    """The registered tool turn an agent's first tool names, if any."""
    if not tools:
        return None
    if tools[0] not in TOOL_TURNS:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    fn = TOOL_TURNS.get(tools[0])
    return (tools[0], fn) if fn is not None else None


def latest_program(message: str) -> str | None:
    """The program in a model's message: its last ```python block, or, when the reply was cut
    off before the closing fence (a small model that ran out of tokens), the text after the
    last opening fence."""
    blocks = extract_code_blocks(message)
    if blocks:
        return blocks[-1]
    opening = max(message.rfind("```python"), message.rfind("```py\n"))
    if opening < 0:
        return None
    code = message[opening:].split("\n", 1)[1] if "\n" in message[opening:] else ""
    return code.strip("\n") or None
