"""Malformed import files through the CLI: one line naming the file, exit 2, nothing written;
inside a folder the malformed file is skipped and reported, as an unreadable one is."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from branchpoint.cli import app

DEEP = "[" * 2000 + "]" * 2000


def _kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def _otlp() -> dict[str, Any]:
    """A valid OTLP/JSON request: one agent step with an LLM call under it."""
    agent = {
        "traceId": "ab" * 16,
        "spanId": "01" * 8,
        "name": "invoke_agent Planner",
        "startTimeUnixNano": str(10**18),
        "endTimeUnixNano": str(10**18 + 10**9),
        "attributes": [
            _kv("gen_ai.operation.name", {"stringValue": "invoke_agent"}),
            _kv("gen_ai.agent.name", {"stringValue": "Planner"}),
            _kv("branchpoint.step", {"intValue": "0"}),
        ],
    }
    chat = {
        **agent,
        "spanId": "02" * 8,
        "parentSpanId": "01" * 8,
        "name": "chat gpt",
        "attributes": [
            _kv("gen_ai.operation.name", {"stringValue": "chat"}),
            _kv("gen_ai.completion", {"stringValue": "Plan: fly"}),
        ],
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [agent, chat]}]}]}


def _spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return spans


def _bad_start(doc: dict[str, Any]) -> None:
    _spans(doc)[1]["startTimeUnixNano"] = "abc"


def _huge_start(doc: dict[str, Any]) -> None:
    _spans(doc)[1]["startTimeUnixNano"] = "1" * 26


def _bad_step(doc: dict[str, Any]) -> None:
    _spans(doc)[0]["attributes"][2] = _kv("branchpoint.step", {"intValue": "abc"})


def _own_parent(doc: dict[str, Any]) -> None:
    _spans(doc)[1]["parentSpanId"] = _spans(doc)[1]["spanId"]


def _spans_not_a_list(doc: dict[str, Any]) -> None:
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = "x"


def _attribute_without_key(doc: dict[str, Any]) -> None:
    del _spans(doc)[0]["attributes"][0]["key"]


OTLP_MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "startTimeUnixNano": _bad_start,
    "is not a time": _huge_start,
    "branchpoint.step": _bad_step,
    "loops back": _own_parent,
    "spans 'x' is not a list": _spans_not_a_list,
    "is not a {key, value} object": _attribute_without_key,
}


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _assert_one_line_error(code: int, out: str, bad: Path, problem: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert str(bad) in out and problem in out


@pytest.mark.parametrize("problem", sorted(OTLP_MUTATIONS))
def test_a_malformed_otlp_file_is_one_line_and_writes_nothing(tmp_path: Path, problem: str) -> None:
    doc = copy.deepcopy(_otlp())
    OTLP_MUTATIONS[problem](doc)
    bad, db = tmp_path / "bad.json", tmp_path / "t.duckdb"
    bad.write_text(json.dumps(doc))
    _assert_one_line_error(*_cli("import", "otlp", str(bad), "--db", str(db)), bad, problem)
    assert not db.exists()


def test_the_valid_otlp_file_imports(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_otlp()))
    code, out = _cli("import", "otlp", str(good), "--db", str(tmp_path / "t.duckdb"))
    assert code == 0 and "imported 1, already imported 0, skipped 0" in out


@pytest.mark.parametrize("fmt", ["whowhen", "agentrx", "otlp"])
def test_json_nested_too_deep_is_a_malformed_file(tmp_path: Path, fmt: str) -> None:
    bad, db = tmp_path / "deep.json", tmp_path / "t.duckdb"
    bad.write_text(DEEP)
    code, out = _cli("import", fmt, str(bad), "--db", str(db))
    _assert_one_line_error(code, out, bad, "nested too deeply")
    assert not db.exists()


def test_a_folder_imports_the_good_file_and_skips_the_malformed_one(tmp_path: Path) -> None:
    folder, db = tmp_path / "traces", tmp_path / "t.duckdb"
    folder.mkdir()
    (folder / "a_good.json").write_text(json.dumps(_otlp()))
    doc = copy.deepcopy(_otlp())
    _own_parent(doc)
    (folder / "b_bad.json").write_text(json.dumps(doc).replace("ab" * 16, "cd" * 16))
    (folder / "c_deep.json").write_text(DEEP)
    code, out = _cli("import", "otlp", str(folder), "--db", str(db))
    assert code == 0 and "Traceback" not in out
    assert "imported 1, already imported 0, skipped 2: b_bad.json (malformed: span" in out
    assert "loops back to it); c_deep.json (not JSON (nested too deeply to read))" in out
    code, out = _cli("sql", "SELECT run_id FROM runs", "--db", str(db), "--format", "csv")
    assert out.split() == ["run_id", "otlp-" + "ab" * 8]


TAU = {
    "reward": 0.0,
    "info": {"task": {"instruction": "Count the t-shirt options.", "outputs": ["10"]}},
    "traj": [
        {"role": "user", "content": "How many t-shirt options are there?"},
        {"role": "assistant", "content": "There are 11 options."},
    ],
}
TRUTH = [
    {
        "trajectory_id": 2,
        "failures": [{"failure_id": 1, "step_number": 2, "failed_agent": "assistant"}],
        "root_cause": {"failure_id": 1},
    }
]


def _agentrx(root: Path, trajectory: Any, truth: Any) -> Path:
    for folder in ("tau_dataset", "ground_truth"):
        (root / folder).mkdir(parents=True)
    (root / "tau_dataset" / "2.json").write_text(json.dumps(trajectory))
    (root / "ground_truth" / "tau_ground_truth.json").write_text(json.dumps(truth))
    return root / "tau_dataset" / "2.json"


@pytest.mark.parametrize(
    ("trajectory", "truth", "problem"),
    [
        ({"traj": [5, None], "info": {"task": 5}}, TRUTH, "a τ-bench trajectory is"),
        (TAU, [{**TRUTH[0], "failures": [5]}], "ground-truth failures must be a list of objects"),
        (TAU, [{**TRUTH[0], "failures": "x"}], "ground-truth failures must be a list of objects"),
    ],
)
def test_a_malformed_agentrx_trajectory_or_ground_truth_is_one_line(
    tmp_path: Path, trajectory: Any, truth: Any, problem: str
) -> None:
    bad, db = _agentrx(tmp_path / "data", trajectory, truth), tmp_path / "t.duckdb"
    _assert_one_line_error(*_cli("import", "agentrx", str(bad), "--db", str(db)), bad, problem)
    assert not db.exists()
    code, out = _cli("import", "agentrx", str(tmp_path / "data"), "--db", str(db))
    _assert_one_line_error(code, out, tmp_path / "data", problem)  # nothing else to import
    assert not db.exists()


def test_the_valid_agentrx_trajectory_imports(tmp_path: Path) -> None:
    good = _agentrx(tmp_path / "data", TAU, TRUTH)
    code, out = _cli("import", "agentrx", str(good), "--db", str(tmp_path / "t.duckdb"))
    assert code == 0 and "imported 1, already imported 0, skipped 0" in out
