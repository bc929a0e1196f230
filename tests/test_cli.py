"""The `branchpoint` command as a user runs it: real processes, real Ray, real DuckDB files."""

from __future__ import annotations

import functools
import json
import socket
from pathlib import Path

import duckdb
import pytest
from cli_process import branchpoint
from shared_data import needs_shared_data

pytestmark = pytest.mark.ray

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_test_first200.jsonl"


bp = functools.partial(branchpoint, timeout=300)  # the CLI in a fresh process, as a user runs it


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@needs_shared_data
def test_sim_run_is_deterministic_for_a_seed_and_traced(tmp_path: Path) -> None:
    outcomes = []
    for name in ("a", "b"):
        db = tmp_path / f"{name}.duckdb"
        result = bp(
            "run",
            "--team",
            "math",
            "--model",
            "sim",
            "--tasks",
            str(GSM8K),
            "--limit",
            "50",
            "--seed",
            "7",
            "--concurrency",
            "4",
            "--db",
            str(db),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "summary" in result.stdout
        # hosts find the sink by name: no handle argument that Ray could not restore on a restart
        assert "constructor arguments in the object store" not in result.stderr
        outcomes.append(
            rows(db, "SELECT task_id, status, final_answer, faults FROM runs ORDER BY task_id")
        )
        assert len(outcomes[-1]) == 50
        assert {r[1] for r in outcomes[-1]} <= {"succeeded", "failed"}
        # every step the runs report is a step span; every chat span hangs off a step span of its run
        assert (
            rows(db, "SELECT sum(n_steps) FROM runs")[0][0]
            == rows(db, "SELECT count(*) FROM steps")[0][0]
        )
        orphans = rows(
            db,
            """SELECT count(*) FROM spans c LEFT JOIN spans s ON s.span_id = c.parent_span_id
                              WHERE c.kind = 'chat' AND (s.kind IS DISTINCT FROM 'step' OR s.run_id <> c.run_id)""",
        )
        assert orphans[0][0] == 0
    assert outcomes[0] == outcomes[1]
    failed_with_fault = [r for r in outcomes[0] if r[1] == "failed"]
    assert failed_with_fault and all(json.loads(r[3]) for r in failed_with_fault)


@needs_shared_data
def test_run_resume_skips_tasks_already_run(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    common = ("run", "--model", "sim", "--tasks", str(GSM8K), "--seed", "3", "--db", str(db))
    first = bp(*common, "--limit", "5")
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = bp(*common, "--limit", "8", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resume: 5 tasks already run" in resumed.stdout
    assert rows(db, "SELECT count(*), count(DISTINCT task_id) FROM runs") == [(8, 8)]
    again = bp(*common, "--limit", "8", "--resume")
    assert again.returncode == 0 and "resume: 8 tasks already run" in again.stdout
    assert rows(db, "SELECT count(*) FROM runs") == [(8,)]


def test_malformed_task_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "answer": "1"}\n{oops\n')
    result = bp("run", "--model", "sim", "--tasks", str(bad), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2
    assert "bad.jsonl:2" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_missing_model_file_is_one_line_error(tmp_path: Path) -> None:
    result = bp("run", "--model", f"local:{tmp_path}/nope.gguf", "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 3
    assert "nope.gguf" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_unreachable_endpoint_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = bp(
        "run", "--model", f"openai:m@http://127.0.0.1:{port}/v1", "--db", str(tmp_path / "x.duckdb")
    )
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr + result.stdout


@needs_shared_data
def test_bad_fork_and_sql_requests_exit_non_zero_and_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    assert (
        bp(
            "run", "--model", "sim", "--tasks", str(GSM8K), "--limit", "3", "--db", str(db)
        ).returncode
        == 0
    )
    before = rows(db, "SELECT count(*) FROM spans")[0][0]
    run_id = rows(db, "SELECT run_id FROM runs LIMIT 1")[0][0]
    bad_json = tmp_path / "iv.json"
    bad_json.write_text("{not json")
    cases = [
        (("fork", "run-nope", "--step", "1", "--db", str(db)), "unknown run id"),
        (("fork", run_id, "--step", "99", "--db", str(db)), "out of range"),
        (
            ("fork", run_id, "--step", "1", "--intervention", str(bad_json), "--db", str(db)),
            "not valid JSON",
        ),
        (("sql", "DELETE FROM spans", "--db", str(db)), "read-only"),
        (("sql", "DROP VIEW runs", "--db", str(db)), "read-only"),
    ]
    for args, message in cases:
        result = bp(*args)
        assert result.returncode != 0, args
        assert message in result.stderr.lower() or message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    assert rows(db, "SELECT count(*) FROM spans")[0][0] == before


@pytest.mark.local_model
def test_run_against_an_openai_compatible_server(tmp_path: Path, llama_server: str) -> None:
    db = tmp_path / "http.duckdb"
    result = bp(
        "run",
        "--team",
        "math",
        "--model",
        llama_server,
        "--tasks",
        "builtin",
        "--limit",
        "1",
        "--db",
        str(db),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [(status, model)] = rows(db, "SELECT status, model FROM runs")
    assert status in ("succeeded", "failed") and model == llama_server
    calls = rows(db, "SELECT count(*), sum(output_tokens) FROM llm_calls")[0]
    assert calls[0] >= 3 and calls[1] > 0  # Planner, Solver, Verifier answered over real HTTP
