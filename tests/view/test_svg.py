"""The server-side SVG plots: one mark per data point, the change point, escaped labels."""

from __future__ import annotations

import re

from branchpoint.view import svg


def test_value_curve_has_one_point_per_step_and_marks_the_change_point() -> None:
    points = [(k, 1.0 if k < 3 else 0.0, 6) for k in range(8)]
    plot = str(svg.value_curve_plot(points, change_point=2))
    steps = [int(s) for s in re.findall(r'class="vk-point" data-step="(\d+)"', plot)]
    assert steps == list(range(8))
    assert 'class="change-point" data-step="2"' in plot


def test_value_curve_without_points_says_so() -> None:
    assert "no resample forks yet" in str(svg.value_curve_plot([], None))


def test_interval_chart_escapes_its_labels() -> None:
    rows = [
        svg.IntervalRow("<script>x</script>", 2, 3, 0.2, 0.9),
        svg.IntervalRow("c", 0, 3, 0, 0.5, True),
    ]
    chart = str(svg.interval_chart(rows))
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert chart.count('class="interval-row') == 2 and "interval-row control" in chart


def node(run_id: str, parent: str | None, step: int | None) -> svg.TreeNode:
    return svg.TreeNode(run_id, parent, step, 4, "failed", run_id)


def test_tree_order_is_depth_first_with_children_by_fork_step() -> None:
    nodes = [
        node("b", "root", 3),
        node("root", None, None),
        node("a", "root", 1),
        node("aa", "a", 2),
    ]
    order = [(n.run_id, depth) for n, depth in svg.tree_order(nodes)]
    assert order == [("root", 0), ("a", 1), ("aa", 2), ("b", 1)]


def test_fork_tree_links_every_run_and_names_its_parent() -> None:
    nodes = [node("root", None, None), node("f1", "root", 1), node("f2", "root", 2)]
    drawing = str(svg.fork_tree(nodes, lambda n: f"/run/{n.run_id}"))
    assert re.findall(r'data-run-id="([^"]+)" data-parent="([^"]*)"', drawing) == [
        ("root", ""),
        ("f1", "root"),
        ("f2", "root"),
    ]
    assert drawing.count("<a href=") == 3


def test_progress_bar_counts() -> None:
    assert "done 3 · running 2 · planned 10" in str(svg.progress_bar(3, 2, 10))
