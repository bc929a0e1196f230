"""Tool functions for teams: the model sees each signature and docstring as the tool's schema."""


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b
