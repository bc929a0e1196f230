"""Task sets (GSM8K, GSM-Plus, HumanEval, the built-in set) and answer scoring."""

from __future__ import annotations

import ast
import functools
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from branchpoint.errors import TaskFileError
from branchpoint.model import Task

BUILTIN = "builtin"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FINAL = re.compile(r"FINAL ANSWER\s*[:=]?\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_GSM8K_ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
_PLAIN_EQUATION = re.compile(
    r"([\d.][\d.\s+\-*/x×()]*[+\-*/x×][\d.\s+\-*/x×()]*)=\s*\$?(-?[\d,]*\.?\d+)"
)


def normalize_number(text: str) -> float | None:
    """A number written as text ("1,200", "$18", "4.50") as a float, or None."""
    match = _NUMBER.search(text.replace("$", ""))
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def numbers_in(text: str) -> list[float]:
    """Every number token in a text, normalised."""
    out = []
    for token in _NUMBER.findall(text):
        try:
            out.append(float(token.replace(",", "")))
        except ValueError:
            continue
    return out


def same_number(a: float | None, b: float | None) -> bool:
    """Numeric answers match to a relative tolerance of 1e-4 (GSM answers are short decimals)."""
    if a is None or b is None:
        return False
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def extract_final_answer(text: str) -> str | None:
    """The number after `FINAL ANSWER:` in a team's last message, or None."""
    match = _FINAL.search(text)
    return match.group(1).replace(",", "") if match else None


def is_correct(final_answer: str | None, task: Task) -> bool:
    """Whether a final answer matches the task's ground truth numerically."""
    if final_answer is None or task.answer is None:
        return False
    return same_number(normalize_number(final_answer), normalize_number(task.answer))


def solution_chain(task: Task) -> list[tuple[str, float]]:
    """The worked solution as (expression, value) pairs: GSM8K annotations or GSM-Plus lines."""
    return list(chain_of(task.solution or ""))


@functools.lru_cache(maxsize=256)
def chain_of(solution: str) -> tuple[tuple[str, float], ...]:
    """`solution_chain` of a solution text, parsed once per text (the sim reads it every turn)."""
    pairs = _GSM8K_ANNOTATION.findall(solution)
    if not pairs:
        pairs = _PLAIN_EQUATION.findall(solution)
    chain = []
    for expr, value in pairs:
        number = normalize_number(value)
        if number is not None:
            chain.append((expr.strip().replace("x", "*").replace("×", "*"), number))
    return tuple(chain)


def _task_from_gsm(row: dict[str, Any], index: int, source: str) -> Task:
    if "solution" in row:  # GSM-Plus
        answer = row.get("answer")
        return Task(
            task_id=f"{source}-{index}",
            question=row["question"],
            answer=None if answer in (None, "None") else str(answer),
            solution=row["solution"],
            source=source,
        )
    solution = row["answer"]
    return Task(
        task_id=f"{source}-{index}",
        question=row["question"],
        answer=solution.split("####")[-1].strip().replace(",", ""),
        solution=solution,
        source=source,
    )


def _task_from_humaneval(row: dict[str, Any]) -> Task:
    return Task(
        task_id=row["task_id"],
        question=row["prompt"],
        answer=row.get("canonical_solution"),
        source="humaneval",
        test=row["test"],
        entry_point=row["entry_point"],
    )


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield lineno, _row(path, lineno, line)
    except UnicodeDecodeError:
        raise TaskFileError(
            f"{path}: not UTF-8 text (a binary file, or another encoding such as UTF-16); "
            "save the tasks as UTF-8 JSONL"
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise TaskFileError(
            f"{path}: not a complete gzip file; compress it with gzip, or drop the .gz suffix"
        ) from None


def _row(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise TaskFileError(f"{path}:{lineno}: JSON nested too deeply to be a task") from None
    if not isinstance(row, dict):
        raise TaskFileError(f"{path}:{lineno}: expected a JSON object per line")
    return row


def _one_line(exc: Exception) -> str:
    """A row's problem in one line (a pydantic error names the first bad field)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "row"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"field {field}: {first['msg']}{more}"
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return f"a field has the wrong type: {str(exc).splitlines()[0][:200]}"


def _task_from_row(row: dict[str, Any], index: int, source: str) -> Task:
    if "task_id" in row and "question" in row:
        return Task.model_validate(row)
    if "entry_point" in row:
        return _task_from_humaneval(row)
    if "question" in row and ("answer" in row or "solution" in row):
        return _task_from_gsm(row, index, source)
    raise KeyError("question")


def load_tasks(path: str | Path, limit: int | None = None) -> list[Task]:
    """Load tasks from a JSONL(.gz) file, or the built-in set when path is `builtin`."""
    if str(path) == BUILTIN:
        return builtin_tasks()[:limit]
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else None
        raise TaskFileError(
            f"task file not found: {path}"
            if what is None
            else f"task file {path} is {what}; pass a .jsonl or .jsonl.gz file of tasks"
        )
    source = path.name.split(".")[0]
    tasks: list[Task] = []
    for lineno, row in _rows(path):
        try:
            tasks.append(_task_from_row(row, len(tasks), source))
        except (KeyError, ValidationError, TypeError, AttributeError) as exc:
            raise TaskFileError(
                f"{path}:{lineno}: not a GSM8K, GSM-Plus, HumanEval or branchpoint task "
                f"({_one_line(exc)})"
            ) from None
        if limit is not None and len(tasks) >= limit:
            break
    if not tasks:
        raise TaskFileError(f"{path}: no tasks in file")
    return tasks


def builtin_tasks() -> list[Task]:
    """The small task set shipped in the package, so the demo needs nothing outside."""
    text = resources.files("branchpoint").joinpath("builtin_tasks.jsonl").read_text()
    return [Task.model_validate_json(line) for line in text.splitlines() if line.strip()]


class Example(NamedTuple):
    """One visible example of a code task: a call expression and the value it should give."""

    call: str
    expected: str  # a Python literal


_ARROW = re.compile(r"\s*(?:#\s*)?(?:==>|=>|==|➞|->|=|returns|should return)\s*(.+?)\.?\s*$")


def _call_prefix(line: str, entry_point: str) -> str | None:
    """The balanced call `entry_point(...)` at the start of a line, or None."""
    start = line.find(f"{entry_point}(")
    if start < 0 or line[:start].strip(" *>\"'") != "":
        return None
    depth = 0
    for i, ch in enumerate(line[start:], start):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and ch == ")":
            return line[start : i + 1]
    return None


def _literal(text: str) -> str | None:
    """`text` as a Python literal (JSON-ish true/false/null accepted), or None."""
    fixed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text.strip()))
    try:
        ast.literal_eval(fixed)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return fixed


def _valid_call(call: str) -> bool:
    try:
        ast.parse(call, mode="eval")
    except SyntaxError:
        return False
    return True


def visible_examples(task: Task) -> list[Example]:
    """The examples in a code task's docstring (`>>> f(x)` then its value, or `f(x) == y`,
    `>>> f(x) == y`, `f(x) # => y` and the other arrows HumanEval prompts use), with literal
    expected values; never the hidden tests."""
    if not task.entry_point:
        return []
    lines = task.question.splitlines()
    examples: list[Example] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        call = _call_prefix(stripped, task.entry_point)  # after any `>>> `
        rest = stripped[stripped.find(call) + len(call) :] if call else ""
        if stripped.startswith(">>>") and not rest.strip():  # the value is the next line
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            expected = _literal(nxt) if call and nxt else None
        else:  # `f(x) == y`, `>>> f(x) == y`, `f(x) # => y`, …
            match = _ARROW.match(rest) if call else None
            expected = _literal(match.group(1)) if match else None
        if call and expected is not None and _valid_call(call):
            examples.append(Example(call, expected))
    return examples
