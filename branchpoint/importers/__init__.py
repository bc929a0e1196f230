"""Importers of foreign traces: failure logs and trace files of systems branchpoint did not run.

`import_path(store, FORMAT, PATH)` reads a file or walks a folder recursively, stores every
log it can read as a run with its steps (idempotently: a log stored before is not stored again)
and reports the files it skipped and why. Formats: `whowhen` (Who&When failure logs),
`agentrx` (AgentRx Magentic-One trajectories with their ground truth), `otlp` (OTLP JSON trace
files, Phoenix span exports).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from branchpoint.errors import BranchpointError, first_line
from branchpoint.importers.logs import ForeignLog, write_logs


class ImportFormatError(BranchpointError):
    """An unknown import format, or a path that holds nothing of the format."""


class SkippedFile(Exception):
    """A file that holds no log of the format (another format, unreadable, or malformed): inside
    a folder it is reported and left out; given directly it is an error."""


# What a reader raises on JSON of the wrong shape: a string where a list belongs, an object
# without a key, a number that is not one, nesting deeper than Python's recursion limit.
SHAPE_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
)  # fmt: skip


def load_json(path: Path) -> Any:
    """The JSON in a file; SkippedFile when it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkippedFile(f"not JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise SkippedFile("not JSON (nested too deeply to read)") from None


def shape_problem(exc: BaseException) -> str:
    """One line saying what is wrong in a file whose reader raised `exc` (one of SHAPE_ERRORS)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, KeyError):
        return f"an object lacks the key {exc.args[0]!r}"
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        return f"{exc.title} {where}: {error['msg']}"
    return first_line(exc)[:200]


# A file reader turns one file into logs, or raises SkippedFile (another format).
FileReader = Callable[[Path], list[ForeignLog]]


def read_guarded(reader: FileReader, file: Path) -> list[ForeignLog]:
    """`reader(file)`, with a malformed file's shape error raised as SkippedFile saying what is
    wrong, so it takes the path of an unreadable file (skipped in a folder, else an error)."""
    try:
        return reader(file)
    except SHAPE_ERRORS as exc:
        raise SkippedFile(f"malformed: {shape_problem(exc)}") from None


Skipped = list[tuple[str, str]]
# A format reader turns a file or folder into logs and the files it skipped, with reasons.
FormatReader = Callable[[Path], tuple[list[ForeignLog], Skipped]]


@dataclass
class ImportReport:
    """What one import read, wrote and left out."""

    format: str
    logs: list[ForeignLog] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    truncated_steps: int = 0

    @property
    def already(self) -> int:
        """Logs read that the database held before this import."""
        return len(self.logs) - len(self.imported)

    def summary(self) -> str:
        """One line: `imported 182, already imported 0, skipped 2: a.txt (not JSON), …`."""
        text = f"imported {len(self.imported)}, already imported {self.already}"
        text += f", skipped {len(self.skipped)}"
        if self.skipped:
            shown = "; ".join(f"{path} ({why})" for path, why in self.skipped[:5])
            more = f"; … {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            text += f": {shown}{more}"
        return text


def _readers() -> dict[str, FormatReader]:
    """Format name -> its reader (imported on use: each pulls in only what it needs)."""
    from branchpoint.importers import agentrx, otlp
    from branchpoint.interventions import whowhen

    return {
        "whowhen": lambda path: walk(path, whowhen.read_file, (".json",)),
        "agentrx": agentrx.read_dataset,
        "otlp": lambda path: walk(path, otlp.read_file, (".json", ".jsonl")),
    }


FORMATS = ("whowhen", "agentrx", "otlp")


def walk(
    path: Path, reader: FileReader, suffixes: tuple[str, ...]
) -> tuple[list[ForeignLog], Skipped]:
    """The logs in a file, or in every file under a folder (recursively), and the skipped files.

    A file given directly must be of the format (else its error is raised); inside a folder,
    files of another format are skipped with the reason. Two files giving the same run id keep
    the first (by path order) and report the second.
    """
    if path.is_file():
        try:
            return read_guarded(reader, path), []
        except SkippedFile as exc:
            raise ImportFormatError(f"{path}: {exc}") from None
    found: list[ForeignLog] = []
    skipped: Skipped = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        shown = str(file.relative_to(path))
        if file.suffix.lower() not in suffixes:
            skipped.append((shown, f"not a {'/'.join(suffixes)} file"))
            continue
        try:
            found += read_guarded(reader, file)
        except (SkippedFile, BranchpointError) as exc:
            skipped.append((shown, str(exc).removeprefix(f"{file}: ")[:200]))
    return unique_runs(found, skipped)


def unique_runs(logs: list[ForeignLog], skipped: Skipped) -> tuple[list[ForeignLog], Skipped]:
    """Logs with distinct run ids (the first kept); each duplicate is reported as skipped."""
    kept: dict[str, ForeignLog] = {}
    for log in logs:
        if log.run.run_id in kept:
            skipped.append(
                (
                    log.run.source or log.run.run_id,
                    f"same run id as another file ({log.run.run_id})",
                )
            )
        else:
            kept[log.run.run_id] = log
    return list(kept.values()), skipped


def read_path(fmt: str, path: Path | str) -> tuple[list[ForeignLog], Skipped]:
    """The logs of format `fmt` under `path` and the files skipped (see `walk`)."""
    if fmt not in FORMATS:
        raise ImportFormatError(
            f"unknown import format {fmt!r}; choose one of: {', '.join(FORMATS)}"
        )
    path = Path(path)
    if not path.exists():
        raise ImportFormatError(f"{path}: no such file or folder")
    return _readers()[fmt](path)


def store_logs(store: Any, fmt: str, logs: list[ForeignLog], skipped: Skipped) -> ImportReport:
    """Store the logs read not stored yet (`write_logs`) and report the whole import."""
    written = write_logs(store, logs)
    return ImportReport(
        format=fmt,
        logs=logs,
        imported=[log.run.run_id for log in written],
        skipped=skipped,
        truncated_steps=sum(log.truncated_steps for log in written),
    )


def import_path(store: Any, fmt: str, path: Path | str) -> ImportReport:
    """Read `path` in format `fmt` and store the logs not stored yet; raises when none is read."""
    logs, skipped = read_path(fmt, path)
    if not logs:
        detail = "; ".join(f"{p} ({why})" for p, why in skipped[:3]) or "it is empty"
        raise ImportFormatError(f"{path}: no {fmt} log found ({detail})")
    return store_logs(store, fmt, logs, skipped)
