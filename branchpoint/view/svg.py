"""Charts drawn server-side as inline SVG: no script, no CDN, the same in the app and the report.

Pure functions from numbers to markup. Every piece of text is escaped here, because labels come
from the trace database (agent names, run ids), which is untrusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _t(value: object) -> str:
    return escape(str(value), quote=True)


def _svg(width: float, height: float, body: list[str], label: str, css_class: str) -> Markup:
    return Markup(
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{_t(label)}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT}>' + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class Axes:
    """A plot area inside an SVG: pixel margins and the data ranges mapped onto it."""

    width: float
    height: float
    x_min: float
    x_max: float
    left: float = 48
    right: float = 16
    top: float = 16
    bottom: float = 36

    def x(self, value: float) -> float:
        span = (self.x_max - self.x_min) or 1.0
        return self.left + (value - self.x_min) / span * (self.width - self.left - self.right)

    def y(self, rate: float) -> float:
        """Rates in [0, 1], 1 at the top."""
        return self.top + (1.0 - rate) * (self.height - self.top - self.bottom)


def _y_grid(ax: Axes) -> list[str]:
    parts = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = ax.y(tick)
        parts.append(
            f'<line x1="{ax.left}" x2="{ax.width - ax.right}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{ax.left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    return parts


def value_curve_plot(
    points: Sequence[tuple[int, float, int]], change_point: int | None, width: float = 640
) -> Markup:
    """V(k) per step k: one marker per (step, rate, forks) point, the change point as a line."""
    height = 240.0
    if not points:
        return _svg(width, 40, ['<text x="8" y="24">no resample forks yet</text>'], "V(k)", "plot")
    steps = [p[0] for p in points]
    ax = Axes(width, height, min(steps) - 0.5, max(steps) + 0.5)
    body = _y_grid(ax)
    label_every = max(1, len(points) // 20)
    for i, (k, _, _) in enumerate(points):
        if i % label_every == 0:
            body.append(
                f'<text x="{ax.x(k):.1f}" y="{height - ax.bottom + 16}" '
                f'text-anchor="middle">{k}</text>'
            )
    body.append(
        f'<text x="{width / 2:.0f}" y="{height - 4}" text-anchor="middle">step k</text>'
        f'<text x="12" y="{ax.top + 4}" text-anchor="start">V</text>'
    )
    if change_point is not None:
        x = ax.x(change_point)
        body.append(
            f'<line class="change-point" data-step="{change_point}" x1="{x:.1f}" x2="{x:.1f}" '
            f'y1="{ax.top}" y2="{height - ax.bottom}" stroke="#c0392b" stroke-dasharray="5 3" '
            f'stroke-width="2"/><text x="{x + 4:.1f}" y="{ax.top + 12}" fill="#c0392b">'
            f"change point: step {change_point}</text>"
        )
    path = " ".join(f"{ax.x(k):.1f},{ax.y(v):.1f}" for k, v, _ in points)
    body.append(f'<polyline points="{path}" fill="none" stroke="#2c6fbb" stroke-width="2"/>')
    for k, v, n in points:
        body.append(
            f'<circle class="vk-point" data-step="{k}" data-value="{v:.4f}" cx="{ax.x(k):.1f}" '
            f'cy="{ax.y(v):.1f}" r="4" fill="#2c6fbb"><title>V({k}) = {v:.2f} '
            f"from {n} resample fork(s)</title></circle>"
        )
    return _svg(width, height, body, "value curve V(k)", "plot value-curve")


@dataclass(frozen=True)
class IntervalRow:
    """One arm of a comparison: successes out of n with its Wilson interval."""

    label: str
    successes: int
    n: int
    low: float
    high: float
    control: bool = False

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0


def interval_chart(rows: Sequence[IntervalRow], width: float = 640) -> Markup:
    """Horizontal success rates with 95% intervals; control arms drawn grey and their rate as a
    dashed line across, so an arm that does no better than control is visible at a glance."""
    row_h, top, bottom, left = 26.0, 8.0, 30.0, 230.0
    height = top + bottom + row_h * max(1, len(rows))
    ax = Axes(width, height, 0.0, 1.0, left=left, right=70, top=top, bottom=bottom)
    body = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = ax.x(tick)
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{tick:g}</text>'
        )
    body.append(
        f'<text x="{ax.x(0.5):.1f}" y="{height - 2}" text-anchor="middle">'
        "success rate (95% Wilson interval)</text>"
    )
    for i, row in enumerate(rows):
        y = top + row_h * (i + 0.5)
        colour = "#7f8c8d" if row.control else "#2c6fbb"
        name = row.label if len(row.label) <= 32 else row.label[:31] + "…"
        body.append(
            f'<g class="interval-row{" control" if row.control else ""}" '
            f'data-label="{_t(row.label)}" data-successes="{row.successes}" data-n="{row.n}">'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_t(name)}</text>'
            f'<line x1="{ax.x(row.low):.1f}" x2="{ax.x(row.high):.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{ax.x(row.rate):.1f}" cy="{y:.1f}" r="5" fill="{colour}"/>'
            f'<text x="{width - ax.right + 6}" y="{y + 4:.1f}">{row.successes}/{row.n}</text>'
            f"<title>{_t(row.label)}: {row.successes}/{row.n}, "
            f"[{row.low:.2f}, {row.high:.2f}]</title></g>"
        )
        if row.control:
            x = ax.x(row.rate)
            body.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" '
                'stroke="#7f8c8d" stroke-dasharray="3 3"/>'
            )
    return _svg(width, height, body, "success rates with intervals", "plot intervals")


def progress_bar(done: int, running: int, planned: int, width: float = 640) -> Markup:
    """A stacked bar: done, running, and the rest of the planned work."""
    height, total = 34.0, max(planned, done + running, 1)
    done_w = width * done / total
    running_w = width * running / total
    body = [
        f'<rect x="0" y="0" width="{width:.0f}" height="22" fill="#eceff1"/>',
        f'<rect class="done" x="0" y="0" width="{done_w:.1f}" height="22" fill="#27ae60"/>',
        (
            f'<rect class="running" x="{done_w:.1f}" y="0" width="{running_w:.1f}" height="22" '
            'fill="#f39c12"/>'
        ),
        f'<text x="4" y="33">done {done} · running {running} · planned {planned}</text>',
    ]
    return _svg(width, height, body, f"{done} of {planned} done", "plot progress")


@dataclass(frozen=True)
class TreeNode:
    """A run in a fork tree: where it branches off its parent and how long it ran."""

    run_id: str
    parent_run_id: str | None
    fork_step: int | None
    n_steps: int
    status: str
    label: str


STATUS_COLOURS = {"succeeded": "#27ae60", "failed": "#c0392b", "errored": "#8e44ad"}


def tree_order(nodes: Sequence[TreeNode]) -> list[tuple[TreeNode, int]]:
    """Nodes depth-first from the roots (children by fork step, then id), with their depth."""
    children: dict[str | None, list[TreeNode]] = {}
    ids = {n.run_id for n in nodes}
    for node in nodes:
        parent = node.parent_run_id if node.parent_run_id in ids else None
        children.setdefault(parent, []).append(node)
    for group in children.values():
        group.sort(key=lambda n: (n.fork_step or 0, n.run_id))
    ordered: list[tuple[TreeNode, int]] = []
    stack = [(n, 0) for n in reversed(children.get(None, []))]
    while stack:
        node, depth = stack.pop()
        ordered.append((node, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(node.run_id, [])))
    return ordered


def fork_tree(
    nodes: Sequence[TreeNode], link: Callable[[TreeNode], str], width: float = 1300
) -> Markup:
    """The fork tree as a branch diagram: a row per run spanning its steps (x = step index),
    joined to its parent's row at the fork step; colour is the run's status."""
    ordered = tree_order(nodes)
    row_h, top, label_w = 24.0, 24.0, 480.0
    height = top + row_h * max(1, len(ordered)) + 8
    last = max((((n.fork_step or 0) + n.n_steps) for n, _ in ordered), default=1)
    ax = Axes(width, height, 0, max(1, last), left=12, right=label_w + 12, top=top, bottom=8)
    rows = {n.run_id: i for i, (n, _) in enumerate(ordered)}
    body = [
        f'<text x="{ax.x(0):.1f}" y="14">step 0</text>',
        f'<text x="{ax.x(last):.1f}" y="14" text-anchor="end">step {last}</text>',
    ]
    for i, (node, _) in enumerate(ordered):
        y = top + row_h * (i + 0.5)
        start = node.fork_step or 0
        colour = STATUS_COLOURS.get(node.status, "#7f8c8d")
        if node.parent_run_id in rows:
            py = top + row_h * (rows[node.parent_run_id] + 0.5)
            body.append(
                f'<path d="M{ax.x(start):.1f},{py:.1f} V{y:.1f}" stroke="#95a5a6" fill="none"/>'
            )
        body.append(
            f'<a href="{_t(link(node))}"><g class="tree-node" data-run-id="{_t(node.run_id)}" '
            f'data-parent="{_t(node.parent_run_id or "")}">'
            f'<line x1="{ax.x(start):.1f}" x2="{ax.x(start + node.n_steps):.1f}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="6" '
            'stroke-linecap="round"/>'
            f'<circle cx="{ax.x(start):.1f}" cy="{y:.1f}" r="4" fill="#34495e"/>'
            f'<text x="{width - label_w}" y="{y + 4:.1f}">{_t(node.label)}</text>'
            f"<title>{_t(node.run_id)} ({_t(node.status)})</title></g></a>"
        )
    return _svg(width, height, body, "fork tree", "plot fork-tree")
