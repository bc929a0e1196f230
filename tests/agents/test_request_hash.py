"""A request's hash covers exactly the text `json.dumps` gives its payload, however it is built:
recordings are keyed by it, so a cached encoding must never change one byte."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from branchpoint.agents.recording import _hash_request, request_json


def reference_json(model: str, request: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The payload as the first recordings were hashed (and every stored one since)."""
    payload = {"model": model, "messages": request, "params": dict(sorted(params.items()))}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


# Text of every kind json escapes differently: ASCII controls, quotes, DEL, non-ASCII, astral.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['"\\\x7f\x00\n', "é" * 1100, "x" * 1024, "line\n" * 400, "\U0001f600" * 600]
)
LEAF = (
    TEXT
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.dates()  # not JSON: `default=str` writes its text
)
VALUE = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT, inner, max_size=4)
        | st.dictionaries(st.integers(0, 9), inner, min_size=1, max_size=3)
    ),  # json sorts these itself
    max_leaves=12,
)
MESSAGE = st.dictionaries(st.sampled_from(["content", "source", "type", "thought"]), TEXT) | (
    st.dictionaries(st.sampled_from(["content", "source", "type"]), VALUE)
)


@settings(max_examples=400, deadline=None)
@given(
    model=TEXT,
    request=st.lists(MESSAGE, max_size=5),
    params=st.dictionaries(TEXT, VALUE, max_size=5),
)
def test_request_json_is_the_text_json_dumps_gives(
    model: str, request: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    expected = reference_json(model, request, params)
    assert request_json(model, request, params) == expected
    assert request_json(model, request, params) == expected  # and again, from the caches
    assert _hash_request(model, request, params) == hashlib.sha256(expected.encode()).hexdigest()


def test_a_sim_request_keeps_its_hash_turn_after_turn() -> None:
    """The shape of a sim request: the plan in a message and again in the sim's parameters,
    hashed on consecutive turns with the same plan (from the caches the second time)."""
    plan = "\n".join(f"{i}. Compute {i}+1 using the values found so far." for i in range(1, 300))
    request = [
        {"content": "You are the Solver.", "type": "SystemMessage"},
        {"content": "Task: count to 300", "source": "user", "type": "UserMessage"},
        {"content": f"Current plan:\n{plan}", "source": "user", "type": "UserMessage"},
    ]
    for step in range(1, 4):
        request.append(
            {
                "content": f"Item {step}: {step}+1 = {step + 1}",
                "source": "Solver",
                "type": "AssistantMessage",
            }
        )
        params = {
            "sim": [3, step, 0, 7, [{"agent": "Solver", "step": 2}], plan, None, "ab" * 32],
            "seed": 7,
            "temperature": 0.7,
            "max_tokens": 384,
            "when": date(2026, 12, 1),
        }
        expected = reference_json("sim", request, params)
        assert (
            _hash_request("sim", request, params) == hashlib.sha256(expected.encode()).hexdigest()
        )
