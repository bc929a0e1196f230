"""`branchpoint report`: the viewer's pages for one run or one sweep as a single HTML file.

Everything is inline (the stylesheet, the SVG plots) and the page carries a Content-Security-
Policy that forbids any fetch, so the file opens anywhere with no network: attach it to a bug
report or keep it as a CI artifact.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from branchpoint.errors import BranchpointError, first_line
from branchpoint.view import pages, queries, svg
from branchpoint.view.snapshot import TraceReader

MAX_STEPS = 5_000
MAX_COMPARISONS = 40


class ReportOutputError(BranchpointError):
    """An `-o` path the report cannot be written to (a directory, a read-only place)."""


@dataclass
class RunPart:
    """One run's section of a report."""

    run: queries.Row
    steps: queries.StepsView
    trials: list[queries.Row]
    trials_source: str
    faults_by_step: dict[int, list[dict[str, Any]]]
    tree: dict[str, Any] | None = None
    debug: dict[str, Any] | None = None
    comparisons: list[queries.Comparison] = field(default_factory=list)


def _comparison_order(row: queries.Row) -> tuple[bool, int, str]:
    kind = (row.get("intervention") or {}).get("kind")
    return (kind == "resample", row.get("fork_step") or 0, row["run_id"])


def run_part(
    reader: queries.Reader, links: pages.ReportLinks, run_id: str, max_comparisons: int
) -> RunPart:
    """Everything the report shows about one run: steps, trials, tree, debugging, forks."""
    run = queries.load_run_row(reader, run_id)
    segments = queries.run_segments(reader, run_id)
    trials, source = queries.run_trials(reader, run_id, segments)
    part = RunPart(
        run,
        queries.run_steps(reader, segments, 1, MAX_STEPS),
        trials,
        source,
        pages.faults_by_step(run["faults"]),
    )
    links.runs_in_report.add(run_id)
    root, rows = queries.fork_tree_rows(reader, run_id)
    if len(rows) > 1:
        forks = sorted((r for r in rows if r["parent_run_id"]), key=_comparison_order)
        for row in forks[:max_comparisons]:
            part.comparisons.append(queries.compare_fork(reader, row["run_id"], 1, MAX_STEPS))
            links.compared.add(row["run_id"])
        links.trees.add(run_id)
        part.tree = {"root": root, "rows": pages.in_tree_order(rows), "svg": Markup("")}
    view = queries.debug_view(reader, run_id)
    if view.hypotheses or view.outcome_groups or view.verdicts:
        links.debugged.add(run_id)
        part.debug = {
            "d": view,
            "curve_svg": svg.value_curve_plot(view.curve, view.change_point),
            "verdict_svg": pages.verdict_chart(view.verdicts),
        }
    return part


def render_report(
    reader: queries.Reader, db_label: str, run_id: str | None = None, sweep_id: str | None = None
) -> str:
    """The report's HTML for a run or a sweep (exactly one of them)."""
    if (run_id is None) == (sweep_id is None):
        raise BranchpointError("give a RUN_ID or --sweep ID (one of them)")
    links = pages.ReportLinks()
    sweep = None
    if sweep_id is not None:
        view = queries.sweep_view(reader, sweep_id)
        links.sweeps_in_report.add(sweep_id)
        sweep = {"s": view, **pages.sweep_charts(view)}
        run_ids = [r["run_id"] for r in view.runs]
        title = f"Sweep {sweep_id}"
        per_run = max(1, MAX_COMPARISONS // max(1, len(run_ids)))
    else:
        run_ids, title, per_run = [str(run_id)], f"Run {run_id}", MAX_COMPARISONS
    parts = [run_part(reader, links, r, per_run) for r in run_ids]
    for part in parts:  # drawn last: its links need every run the report holds
        if part.tree is not None:
            part.tree["svg"] = pages.tree_svg(part.tree["rows"], part.tree["root"], links)
    return pages.render(
        "report.html",
        links,
        db_label,
        title=title,
        sweep=sweep,
        runs=parts,
        written_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(
    db_path: Path, out: Path, run_id: str | None = None, sweep_id: str | None = None
) -> Path:
    """Write the report file atomically (a failed report leaves no half-written file)."""
    if out.is_dir():
        raise ReportOutputError(
            f"{out} is a directory; pass -o the path of an HTML file (such as "
            f"{out / 'report.html'})"
        )
    reader = TraceReader(db_path)
    try:
        html = render_report(reader, str(db_path), run_id, sweep_id)
    finally:
        reader.close()
    _write_atomically(out, html)
    return out


def _write_atomically(out: Path, text: str) -> None:
    """Write through a temporary file beside `out`, removed if anything fails."""
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, out)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            why = exc.strerror or first_line(exc)
            if isinstance(exc, FileExistsError):  # from mkdir: the folder named is a file
                why = f"{out.parent} is a file, not a folder"
            raise ReportOutputError(
                f"cannot write the report to {out} ({why}); pass -o a writable file path"
            ) from None
        raise
