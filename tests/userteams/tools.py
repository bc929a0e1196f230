"""A user's tool functions (the model sees their signature and docstring as the tool schema)."""

from __future__ import annotations


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
