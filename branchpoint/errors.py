"""Errors a user can cause: each names the fix; the CLI prints one line and exits non-zero."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an error message (DuckDB adds the query and a caret below it;
    parsers add context lines): what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BranchpointError(Exception):
    """Base of every user-facing error; `exit_code` is what the CLI returns."""

    exit_code = 2


class UnknownRunError(BranchpointError):
    """A run id that is not in the trace database."""


class NotReplayableError(BranchpointError):
    """A run that cannot be forked or replayed (an imported log: no checkpoints)."""


class StepOutOfRangeError(BranchpointError):
    """A step index outside the run's steps."""


class InvalidInterventionError(BranchpointError):
    """Malformed intervention JSON, or an edit that does not fit the step's kind."""


class TaskFileError(BranchpointError):
    """A task file that is missing or malformed."""


class ModelUnavailableError(BranchpointError):
    """A model file that is missing or corrupt, or an endpoint that cannot be reached."""

    exit_code = 3


class AgentTurnError(BranchpointError):
    """An agent's turn raised in this process (its team's code, a tool, the model client): the
    run ends as errored with the cause's one line, as a turn that raises on a Ray host does."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {first_line(cause)}")
        self.cause = cause


class ReplayMissError(BranchpointError):
    """A replay asked for an LLM response that was never recorded."""


class ReadOnlyQueryError(BranchpointError):
    """A write statement sent through the read-only SQL interface."""


class DatabaseBusyError(BranchpointError):
    """The trace database is held by another process and no live sink answers for it."""


class UnknownSweepError(BranchpointError):
    """A sweep id that is not in the trace database."""


class SandboxUnavailableError(BranchpointError):
    """The machine cannot confine generated code and the weak sandbox was not chosen."""

    exit_code = 3


class ModelCallError(BranchpointError):
    """A model endpoint call that failed after its retries; names the status code and message."""

    exit_code = 1


class HostLostError(BranchpointError):
    """A step whose agent host died on every attempt."""

    exit_code = 1
