"""`branchpoint import` / `whowhen` / `export --otlp-file` as a user runs them (no Ray)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from branchpoint.cli import app

WHOWHEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "whowhen_samples"


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_import_twice_then_ground_truth_scores_every_log(tmp_path: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    code, out = _cli("import", "whowhen", str(WHOWHEN), "--db", db)
    assert code == 0 and "imported 10, already imported 0, skipped 0" in out
    code, out = _cli("import", "whowhen", str(WHOWHEN), "--db", db, "--methods", "ground_truth")
    assert code == 0 and "imported 0, already imported 10, skipped 0" in out
    assert re.search(r"ground_truth │ all +│ 10/10", out)
    assert re.search(r"ground_truth │ whowhen-ag2 +│ 5/5 ", out)
    code, out = _cli("sql", "SELECT count(*) AS n FROM runs", "--db", db, "--format", "csv")
    assert out.split() == ["n", "10"]


def test_judge_none_and_sim_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    """Bug 2: `--judge none` was rejected after the logs were written; `--judge sim` crashed."""
    db = tmp_path / "t.duckdb"
    code, out = _cli("whowhen", str(WHOWHEN), "--db", str(db), "--judge", "sim")
    assert code == 2 and "cannot judge" in out and len(out.strip().splitlines()) == 1
    code, out = _cli("whowhen", str(WHOWHEN), "--db", str(db), "--judge", "none")
    assert code == 2 and "need(s) a judge" in out
    assert not db.exists()
    code, out = _cli(
        "whowhen", str(WHOWHEN), "--db", str(db), "--judge", "none", "--methods", "ground_truth"
    )
    assert code == 0 and re.search(r"ground_truth │ all +│ 10/10", out)


def test_unknown_method_message_lists_ground_truth(tmp_path: Path) -> None:
    code, out = _cli("import", "whowhen", str(WHOWHEN), "--db", str(tmp_path / "t.duckdb"),
                     "--methods", "nope")  # fmt: skip
    assert code == 2 and "ground_truth" in out and not (tmp_path / "t.duckdb").exists()


def test_a_folder_with_strays_reports_them(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "Hand-Crafted"
    logs.mkdir(parents=True)
    (logs / "7.json").write_text((WHOWHEN / "hand_crafted_7.json").read_text())
    (logs / "notes.json").write_text(json.dumps([1, 2]))
    code, out = _cli("import", "whowhen", str(tmp_path / "logs"), "--db", str(tmp_path / "t.db"))
    assert code == 0
    assert "imported 1, already imported 0, skipped 1: Hand-Crafted/notes.json" in out


def test_export_otlp_file_then_import_it_elsewhere(tmp_path: Path) -> None:
    first, second = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")
    assert _cli("import", "whowhen", str(WHOWHEN), "--db", first)[0] == 0
    out_file = tmp_path / "spans.json"
    code, out = _cli("export", "--otlp-file", str(out_file), "--db", first)
    assert code == 0 and "wrote 281 spans" in out
    code, out = _cli("import", "otlp", str(out_file), "--db", second)
    assert code == 0 and "imported 10," in out
    query = "SELECT run_id, step, agent, kind, content FROM steps ORDER BY run_id, step"
    assert _cli("sql", query, "--db", first, "--format", "json") == _cli(
        "sql", query, "--db", second, "--format", "json"
    )
