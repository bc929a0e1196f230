"""HTML for each page of the viewer and for the report: the data of `queries` through templates.

Templates are files in `templates/`, rendered by Jinja2 with autoescaping on for everything:
step contents, prompts and tool outputs are untrusted text. Pages carry no script at all, and a
Content-Security-Policy that allows none, so even markup that slipped through could not run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FunctionLoader, StrictUndefined
from markupsafe import Markup

from branchpoint.interventions.verdicts import wilson_interval
from branchpoint.view import svg
from branchpoint.view.queries import (
    Comparison,
    DebugView,
    Row,
    RunFilter,
    RunsView,
    StepsView,
    SweepView,
)

TEMPLATES = files("branchpoint.view") / "templates"


def _load(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def when(value: Any) -> str:
    """A timestamp to the second (the database keeps microseconds)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else str(value or "")


@cache
def environment() -> Environment:
    """The one Jinja2 environment: templates from the package, everything escaped."""
    env = Environment(
        loader=FunctionLoader(_load),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    return env


@cache
def stylesheet() -> Markup:
    """The stylesheet, inlined into every page (trusted: it ships with the package)."""
    return Markup(_load("style.css"))


class ServerLinks:
    """URLs of the live app."""

    live = True

    def runs(self, **filters: str) -> str:
        query = urlencode({k: v for k, v in filters.items() if v})
        return "/" + (f"?{query}" if query else "")

    def run(self, run_id: str) -> str:
        return f"/run/{quote(run_id, safe='')}"

    def tree(self, run_id: str) -> str:
        return f"/run/{quote(run_id, safe='')}/tree"

    def debug(self, run_id: str) -> str:
        return f"/run/{quote(run_id, safe='')}/debug"

    def compare(self, run_id: str) -> str:
        return f"/compare/{quote(run_id, safe='')}"

    def sweeps(self) -> str:
        return "/sweeps"

    def sweep(self, sweep_id: str) -> str:
        return f"/sweep/{quote(sweep_id, safe='')}"


@dataclass
class ReportLinks:
    """Anchors inside one report file; a target that is not in the report gets no link."""

    runs_in_report: set[str] = field(default_factory=set)
    compared: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    debugged: set[str] = field(default_factory=set)
    sweeps_in_report: set[str] = field(default_factory=set)
    live = False

    def runs(self, **filters: str) -> str:
        return ""

    def run(self, run_id: str) -> str:
        return f"#run-{run_id}" if run_id in self.runs_in_report else ""

    def tree(self, run_id: str) -> str:
        return f"#tree-{run_id}" if run_id in self.trees else ""

    def debug(self, run_id: str) -> str:
        return f"#debug-{run_id}" if run_id in self.debugged else ""

    def compare(self, run_id: str) -> str:
        return f"#compare-{run_id}" if run_id in self.compared else ""

    def sweeps(self) -> str:
        return ""

    def sweep(self, sweep_id: str) -> str:
        return f"#sweep-{sweep_id}" if sweep_id in self.sweeps_in_report else ""


Links = ServerLinks | ReportLinks


def render(template: str, links: Links, db_label: str, **context: Any) -> str:
    """A whole page."""
    page = environment().get_template(template)
    return page.render(links=links, db_label=db_label, css=stylesheet(), **context)


def faults_by_step(faults: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Injected faults keyed by the step they hit."""
    found: dict[int, list[dict[str, Any]]] = {}
    for fault in faults:
        if isinstance(fault, dict) and isinstance(fault.get("step"), int):
            found.setdefault(fault["step"], []).append(fault)
    return found


def tree_label(row: Row, root: str) -> str:
    """The text beside a run in the fork tree."""
    if row["run_id"] == root:
        return f"{row['run_id']} (original, {row['status']})"
    kind = (row.get("intervention") or {}).get("kind", "fork")
    return f"{row['run_id']} @{row['fork_step']} {kind} ({row['status']})"


def tree_svg(rows: list[Row], root: str, links: Links) -> Markup:
    """The fork tree drawing of `rows` (from `queries.fork_tree_rows`)."""
    nodes = [
        svg.TreeNode(
            run_id=r["run_id"],
            parent_run_id=r["parent_run_id"],
            fork_step=r["fork_step"],
            n_steps=int(r["n_steps"] or 0),
            status=r["status"] or "",
            label=tree_label(r, root),
        )
        for r in rows
    ]
    return svg.fork_tree(
        nodes, lambda n: links.compare(n.run_id) if n.parent_run_id else links.run(n.run_id)
    )


def interval_rows(groups: Iterable[Row]) -> list[svg.IntervalRow]:
    """Chart rows (label, successes, n, control) with their Wilson intervals."""
    rows = []
    for g in groups:
        n, successes = int(g["n"]), int(g["successes"])
        low, high = wilson_interval(successes, n)
        rows.append(svg.IntervalRow(str(g["label"]), successes, n, low, high, bool(g["control"])))
    return rows


def verdict_chart(verdicts: Iterable[Row]) -> Markup:
    """Each verdict's success rate and interval, with its control arm drawn below it."""
    rows = []
    for v in verdicts:
        name = f"{v.get('method') or '?'} @{v.get('step')} {v.get('intervention_kind') or ''}"
        rows.append(
            svg.IntervalRow(name, v["successes"], v["n"], v["wilson_low"], v["wilson_high"])
        )
        c_low, c_high = wilson_interval(v["control_successes"], v["control_n"])
        rows.append(
            svg.IntervalRow(
                "  control", v["control_successes"], v["control_n"], c_low, c_high, True
            )
        )
    return svg.interval_chart(rows)


def runs_page(view: RunsView, filters: RunFilter, db_label: str) -> str:
    links = ServerLinks()
    chosen = {name: getattr(filters, name) for name in ("team", "model", "status", "sweep")}
    chosen.update(task=filters.task, kind=filters.kind)

    def page_href(n: int) -> str:
        return "/?" + urlencode({**{k: v for k, v in chosen.items() if v}, "page": n})

    return render("runs.html", links, db_label, view=view, filters=chosen, page_href=page_href)


@dataclass(frozen=True)
class ForkForm:
    """The fork form's action, token and prefilled values."""

    action: str
    token: str
    step: int
    kind: str
    text: str


def run_page(
    run: Row,
    steps: StepsView,
    trials: tuple[list[Row], str],
    db_label: str,
    fork_form: ForkForm | None = None,
) -> str:
    links = ServerLinks()
    base = links.run(run["run_id"])

    def fork_href(step: int) -> str:
        return f"{base}?{urlencode({'fork_step': step, 'page': steps.page.number})}#fork"

    return render(
        "run.html",
        links,
        db_label,
        run=run,
        steps=steps,
        trials=trials[0],
        trials_source=trials[1],
        faults_by_step=faults_by_step(run["faults"]),
        fork_form=fork_form,
        fork_href=fork_href if fork_form else None,
        page_href=lambda n: f"{base}?page={n}",
    )


def in_tree_order(rows: list[Row]) -> list[Row]:
    """The tree's runs in the order the drawing shows them (depth first)."""
    by_id = {r["run_id"]: r for r in rows}
    nodes = [svg.TreeNode(r["run_id"], r["parent_run_id"], r["fork_step"], 0, "", "") for r in rows]
    return [by_id[node.run_id] for node, _ in svg.tree_order(nodes)]


def tree_page(run_id: str, root: str, rows: list[Row], limit: int, db_label: str) -> str:
    links = ServerLinks()
    rows = in_tree_order(rows)
    return render(
        "tree.html",
        links,
        db_label,
        run_id=run_id,
        root=root,
        rows=rows,
        truncated=len(rows) >= limit,
        svg=tree_svg(rows, root, links),
    )


def compare_page(comparison: Comparison, db_label: str) -> str:
    links = ServerLinks()
    base = links.compare(comparison.fork["run_id"])
    return render(
        "compare.html", links, db_label, c=comparison, page_href=lambda n: f"{base}?page={n}"
    )


def debug_page(run: Row, view: DebugView, db_label: str) -> str:
    return render(
        "debug.html",
        ServerLinks(),
        db_label,
        run=run,
        d=view,
        curve_svg=svg.value_curve_plot(view.curve, view.change_point),
        verdict_svg=verdict_chart(view.verdicts),
    )


def sweep_charts(view: SweepView) -> dict[str, Markup]:
    """The sweep page's three plots."""
    return {
        "progress_svg": svg.progress_bar(
            int(view.sweep["done"] or 0), int(view.running), int(view.sweep["planned"] or 0)
        ),
        "method_svg": svg.interval_chart(interval_rows(view.by_method)),
        "kind_svg": svg.interval_chart(interval_rows(view.by_kind)),
    }


def sweep_page(view: SweepView, db_label: str) -> str:
    return render("sweep.html", ServerLinks(), db_label, s=view, **sweep_charts(view))


def sweeps_page(rows: list[Row], db_label: str) -> str:
    return render("sweeps.html", ServerLinks(), db_label, sweeps=rows)


def error_page(code: int, reason: str, message: str, db_label: str) -> str:
    return render("error.html", ServerLinks(), db_label, code=code, reason=reason, message=message)


def job_page(job: Any, db_label: str) -> str:
    return render("job.html", ServerLinks(), db_label, job=job)
