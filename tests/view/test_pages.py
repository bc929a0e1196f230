"""Pages and the report rendered from a small trace database (fast: no browser, no server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from branchpoint.errors import UnknownRunError, UnknownSweepError
from branchpoint.telemetry.query import readonly_query
from branchpoint.view import pages, queries
from branchpoint.view.report import render_report, write_report

from . import tracedb


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("view") / "traces.duckdb"
    tracedb.build(path)
    return path


@pytest.fixture(scope="module")
def reader(db: Path) -> Iterator[tracedb.ConnectionReader]:
    connection = tracedb.ConnectionReader(db)
    yield connection
    connection.close()


class Tags(HTMLParser):
    """Collects every tag and attribute, to look for scripts and network references."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    """No script element and no event-handler attribute survived; the payload shows as text."""
    found = tags(html)
    assert not [t for t, _ in found if t == "script"]
    assert not [(t, a) for t, attrs in found for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html


def test_runs_page_lists_every_run_with_counts(reader: tracedb.ConnectionReader) -> None:
    view = queries.list_runs(reader, queries.RunFilter())
    assert {r["run_id"] for r in view.rows} == {"run-root", "run-fix", "run-ctl", "run-live"}
    root = next(r for r in view.rows if r["run_id"] == "run-root")
    assert (root["forks"], root["verdicts"], root["steps"]) == (2, 1, 5)
    html = pages.runs_page(view, queries.RunFilter(), "db")
    assert re.findall(r'class="run-row" data-run-id="([^"]+)"', html) == [
        r["run_id"] for r in view.rows
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (queries.RunFilter(status="succeeded"), {"run-fix"}),
        (queries.RunFilter(kind="root"), {"run-root", "run-live"}),
        (queries.RunFilter(status="running"), {"run-live"}),
        (queries.RunFilter(kind="fork"), {"run-fix", "run-ctl"}),
        (queries.RunFilter(sweep="sweep-1"), {"run-root", "run-fix", "run-ctl"}),
        (
            queries.RunFilter(task="wage", team="math", model="sim"),
            {"run-root", "run-fix", "run-ctl"},
        ),
        (queries.RunFilter(task="nothing-like-this"), set()),
    ],
)
def test_runs_filters(
    reader: tracedb.ConnectionReader, filters: queries.RunFilter, expected: set[str]
) -> None:
    assert {r["run_id"] for r in queries.list_runs(reader, filters).rows} == expected


def test_runs_paginate(reader: tracedb.ConnectionReader) -> None:
    first = queries.list_runs(reader, queries.RunFilter(), page=1, size=3)
    second = queries.list_runs(reader, queries.RunFilter(), page=2, size=3)
    assert (first.page.count, len(first.rows), len(second.rows)) == (2, 3, 1)
    assert "page 1 of 2" in pages.runs_page(first, queries.RunFilter(), "db")


def run_html(reader: tracedb.ConnectionReader, run_id: str, page: int = 1, size: int = 100) -> str:
    run = queries.load_run_row(reader, run_id)
    segments = queries.run_segments(reader, run_id)
    steps = queries.run_steps(reader, segments, page, size)
    return pages.run_page(run, steps, queries.run_trials(reader, run_id, segments), "db")


def test_run_page_shows_every_step_in_order_with_calls_and_faults(
    reader: tracedb.ConnectionReader,
) -> None:
    html = run_html(reader, "run-root")
    assert re.findall(r'class="step[^"]*" id="step-(\d+)"', html) == ["0", "1", "2", "3", "4"]
    assert 'class="step fault" id="step-2"' in html
    assert "fault: wrong_operand" in html
    assert "1 LLM call(s), 1 tool call(s)" in html and "print(15*8)" in html
    assert "trial 0: steps 0–4" in html and "stored by the debugger" in html
    assert_inert(html)


def test_a_forks_page_shows_the_shared_prefix_then_its_own_steps(
    reader: tracedb.ConnectionReader,
) -> None:
    html = run_html(reader, "run-fix")
    assert re.findall(r'id="step-(\d+)"', html) == ["0", "1", "2", "3", "4"]
    assert html.count("shared prefix") == 2
    assert "120*5 = 600" in html and "intervention" in html
    assert "rule-based (plan steps)" in html


def test_a_run_still_writing_is_listed_as_running_with_its_steps(
    reader: tracedb.ConnectionReader,
) -> None:
    [live] = queries.list_runs(reader, queries.RunFilter(status="running")).rows
    assert (live["run_id"], live["steps"]) == ("run-live", 2)
    html = run_html(reader, "run-live")
    assert re.findall(r'id="step-(\d+)"', html) == ["0", "1"]
    assert "status-running" in html


def test_run_steps_paginate(reader: tracedb.ConnectionReader) -> None:
    html = run_html(reader, "run-root", page=2, size=2)
    assert re.findall(r'id="step-(\d+)"', html) == ["2", "3"]
    assert "page 2 of 3" in html


def test_unknown_run_names_the_id(reader: tracedb.ConnectionReader) -> None:
    with pytest.raises(UnknownRunError, match="'no-such-run'"):
        queries.load_run_row(reader, "no-such-run")
    with pytest.raises(UnknownSweepError, match="'no-such-sweep'"):
        queries.sweep_view(reader, "no-such-sweep")


def test_fork_tree_shows_the_parent_and_its_forks(reader: tracedb.ConnectionReader) -> None:
    root, rows = queries.fork_tree_rows(reader, "run-ctl")
    assert root == "run-root"
    html = pages.tree_page("run-ctl", root, rows, 500, "db")
    pairs = set(re.findall(r'class="tree-row" data-run-id="([^"]+)" data-parent="([^"]*)"', html))
    assert pairs == {("run-root", ""), ("run-fix", "run-root"), ("run-ctl", "run-root")}
    assert html.count('class="tree-node"') == 3


def test_side_by_side_shows_the_intervention_and_the_first_divergence(
    reader: tracedb.ConnectionReader,
) -> None:
    comparison = queries.compare_fork(reader, "run-fix")
    assert (comparison.fork_step, comparison.divergence) == (2, 2)
    html = pages.compare_page(comparison, "db")
    assert re.findall(r'class="pair[^"]*first-divergence[^"]*"[^>]*data-step="(\d+)"', html) == [
        "2"
    ]
    assert 'id="intervention"' in html and "replace_message" in html and "120*5 = 600" in html
    assert_inert(html)
    control = queries.compare_fork(reader, "run-ctl")
    assert control.divergence is None
    assert not re.findall(r'class="pair[^"]*first-divergence', pages.compare_page(control, "db"))


def test_comparing_a_root_run_is_refused(reader: tracedb.ConnectionReader) -> None:
    with pytest.raises(UnknownRunError, match="not a fork"):
        queries.compare_fork(reader, "run-root")


def test_debug_page_verdicts_match_the_table_and_curve_has_a_point_per_step(
    reader: tracedb.ConnectionReader, db: Path
) -> None:
    view = queries.debug_view(reader, "run-root")
    html = pages.debug_page(queries.load_run_row(reader, "run-root"), view, "db")
    columns, rows = readonly_query(db, "SELECT * FROM verdicts")
    for row in (dict(zip(columns, r, strict=True)) for r in rows):
        assert f'data-hypothesis-id="{row["hypothesis_id"]}"' in html
        assert f"[{row['wilson_low']:.2f}, {row['wilson_high']:.2f}]" in html
        assert f"{row['successes']}/{row['n']}" in html
        assert f"{row['control_successes']}/{row['control_n']}" in html
        assert f"<strong>{row['label']}</strong>" in html
    assert re.findall(r'class="vk-point" data-step="(\d+)"', html) == ["0", "1", "2", "3", "4"]
    assert 'class="change-point" data-step="2"' in html
    assert_inert(html)


def test_sweep_page_shows_progress_and_flips_against_control(
    reader: tracedb.ConnectionReader,
) -> None:
    view = queries.sweep_view(reader, "sweep-1")
    html = pages.sweep_page(view, "db")
    assert "planned 8 · done 0" in html
    assert 'data-label="value_curve" data-successes="1" data-n="1"' in html
    assert 'interval-row control" data-label="resample"' in html
    assert 'href="/sweep/sweep-1"' in pages.sweeps_page(queries.list_sweeps(reader), "db")


@pytest.mark.parametrize("target", [{"run_id": "run-root"}, {"sweep_id": "sweep-1"}])
def test_report_is_self_contained(reader: tracedb.ConnectionReader, target: dict[str, str]) -> None:
    html = render_report(reader, "db", **target)
    for tag, attrs in tags(html):
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for name in ("src", "href", "action"):
            assert not (attrs.get(name) or "#").split("#")[0], (tag, attrs)
    assert "default-src 'none'" in html
    assert 'id="run-run-root"' in html and 'id="compare-run-fix"' in html
    assert_inert(html)


def test_write_report_refuses_an_unknown_run_and_writes_nothing(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with pytest.raises(UnknownRunError):
        write_report(db, out, run_id="nope")
    assert list(tmp_path.iterdir()) == []
