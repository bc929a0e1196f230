"""Bad input gives one line and exit code 2, never a traceback or a pydantic dump; out-of-range
flags are refused before anything runs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchpoint.cli import app


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def assert_one_line(code: int, output: str, *expected: str) -> None:
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    for text in expected:
        assert text in lines[0], lines[0]


def write_task_files(folder: Path) -> dict[str, Path]:
    files = {
        "binary": folder / "binary.jsonl",
        "utf16": folder / "utf16.jsonl",
        "not_gzip": folder / "not_gzip.jsonl.gz",
        "truncated_gzip": folder / "truncated.jsonl.gz",
        "nested": folder / "nested.jsonl",
        "dict_answer": folder / "dict_answer.jsonl",
        "wrong_types": folder / "wrong_types.jsonl",
    }
    files["binary"].write_bytes(b"\x00\x01\xff\xfe\x89PNG binary")
    files["utf16"].write_bytes('{"question": "q", "answer": "1"}\n'.encode("utf-16"))
    files["not_gzip"].write_text("plain text")
    rows = "".join(f'{{"question": "q{i}", "answer": "{i}"}}\n' for i in range(5000))
    whole = gzip.compress(rows.encode())
    files["truncated_gzip"].write_bytes(whole[: len(whole) // 2])
    files["nested"].write_text("[" * 100_000 + "]" * 100_000 + "\n")
    files["dict_answer"].write_text('{"question": "q", "answer": {"x": 1}}\n')
    files["wrong_types"].write_text('{"task_id": 5, "question": [1, 2], "answer": 3}\n')
    return files


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("binary", "not UTF-8 text"),
        ("utf16", "not UTF-8 text"),
        ("not_gzip", "not a complete gzip file"),
        ("truncated_gzip", "not a complete gzip file"),
        ("nested", "nested too deeply"),
        ("dict_answer", "wrong type"),
        ("wrong_types", "field task_id: Input should be a valid string (and 2 more)"),
    ],
)
def test_bad_task_files(tmp_path: Path, name: str, expected: str) -> None:
    path = write_task_files(tmp_path)[name]
    code, output = invoke(
        "run", "--model", "sim", "--tasks", str(path), "--db", str(tmp_path / "t.db")
    )
    assert_one_line(code, output, expected)
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("sim:abc", "sim latency"),
        ("sim:nan", "sim latency"),
        ("sim:-1", "sim latency"),
        (" sim", "spaces"),
        ("local:/etc/passwd", ".gguf"),
        ("openai:m@http://[::1", "malformed"),
        ("http://[::1", "unknown model spec"),
    ],
)
def test_bad_model_specs(tmp_path: Path, model: str, expected: str) -> None:
    code, output = invoke("run", "--model", model, "--db", str(tmp_path / "t.db"))
    assert_one_line(code, output, expected)


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--model", "sim", "--limit", "-1"),
        ("run", "--model", "sim", "--concurrency", "0"),
        ("run", "--model", "sim", "--concurrency", "-4"),
        ("run", "--model", "sim", "--fault-rate", "-3"),
        ("run", "--model", "sim", "--fault-rate", "1.5"),
        ("fork", "run-x", "--step", "-1"),
        ("fork", "run-x", "--step", "1", "--repeats", "0"),
        ("demo", "--limit", "0"),
    ],
)
def test_out_of_range_flags_are_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, output = invoke(*args, "--db", str(tmp_path / "t.db"))
    assert code == 2 and "Invalid value" in output, output
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\xff\xfe binary", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"kind": "resample", "step": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b'{"kind": "swap_model", "step": 1, "model": "sim:abc"}', "sim latency"),
        (b'{"kind": "swap_model", "step": 1, "model": "gpt"}', "unknown model spec"),
    ],
)
def test_bad_fork_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "iv.json"
    path.write_bytes(content)
    code, output = invoke(
        "fork", "run-x", "--step", "1", "--intervention", str(path), "--db", str(tmp_path / "t.db")
    )
    assert_one_line(code, output, expected)


def test_export_to_an_unwritable_folder(tmp_path: Path) -> None:
    from branchpoint.telemetry.store import DuckDBTraceStore

    db = tmp_path / "t.duckdb"
    DuckDBTraceStore(db).close()
    code, output = invoke("export", "--parquet", "/proc/nope", "--db", str(db))
    assert_one_line(code, output, "cannot write /proc/nope", "choose a writable folder")
