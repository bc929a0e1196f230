"""Result tables of the debugger benchmark, from its saved state: localisation, flips, value-curve misses.

Also two offline re-analyses of the stored value curves (binomial change point, last step with
V > 0) that show what a different change-point rule in `attribution.value_curve_hypothesis`
would have scored on the very same forks.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from benchmarks.common import console
from branchpoint.interventions.pipeline import JUDGE_METHODS
from branchpoint.interventions.verdicts import holm

CURVE_METHODS = ("value_curve", "ground_truth")


def first_hyp(hyps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A method's main hypothesis (its first), if any."""
    return hyps[0] if hyps else None


def accuracy_row(name: str, picks: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> list[str]:
    """A table row: runs, hypotheses given, agent-level and step-level (exact) accuracy."""
    n = len(picks)
    agent = sum(h is not None and h["agent"] == f["agent"] for h, f in picks)
    step = sum(h is not None and h["step"] == f["step"] for h, f in picks)
    given = sum(h is not None for h, _ in picks)
    return [
        name,
        str(n),
        str(given),
        f"{agent}/{n} = {agent / max(n, 1):.0%}",
        f"{step}/{n} = {step / max(n, 1):.0%}",
    ]


def binomial_change_point(curve: dict[str, float], repeats: int) -> int | None:
    """Offline re-analysis: the change point of V(k) by a two-segment binomial likelihood.

    Successes s_k = V(k)·repeats; the failed original is one more point (0 of 1) after the last
    step. The split maximising the likelihood of one success rate before and one after wins
    (ties to the later k). None when no fork succeeded.
    """
    points = sorted((int(k), round(v * repeats)) for k, v in curve.items())
    counts = [(s, repeats) for _, s in points] + [(0, 1)]
    if not any(s for s, _ in counts):
        return None

    def loglik(segment: list[tuple[int, int]]) -> float:
        s, n = sum(a for a, _ in segment), sum(b for _, b in segment)
        p = s / n
        return (s * math.log(p) if s else 0.0) + ((n - s) * math.log(1 - p) if n - s else 0.0)

    best = max(
        range(len(points)), key=lambda i: (loglik(counts[: i + 1]) + loglik(counts[i + 1 :]), i)
    )
    return points[best][0]


def last_recoverable(curve: dict[str, float]) -> int | None:
    """Offline re-analysis: the last step from which some resample fork still succeeded."""
    alive = [int(k) for k, v in curve.items() if v > 0]
    return max(alive) if alive else None


def majority(successes: int, n: int) -> bool:
    """At least 2/3 of the forks succeeded."""
    return n > 0 and 3 * successes >= 2 * n


def print_tables(state: dict[str, Any]) -> None:
    """All result tables from the saved state (partial if the benchmark is unfinished)."""
    runs, debug = state["runs"], state["debug"]
    cfg = state["config"]
    failed = sum(v["status"] == "failed" for v in runs.values())
    console.print(
        f"{len(runs)} sim runs with one injected fault each (recurrence R={cfg['recurrence']}, seed "
        f"{cfg['seed']}); {failed} failed; {len(debug)} debugged "
        f"(curve_repeats={cfg['curve_repeats']}, repeats={cfg['repeats']})"
    )
    loc = Table(title=f"localisation vs the injected fault ({len(debug)} failed runs)")
    for col in ("method", "runs", "with hypothesis", "agent-level", "step-level (exact)"):
        loc.add_column(col, justify="right")
    for method in CURVE_METHODS:
        picks = [
            (first_hyp([h for h in d["hyps"] if h["method"] == method]), d["fault"])
            for d in debug.values()
        ]
        loc.add_row(*accuracy_row(method, picks))
    subset = [rid for rid in state["judge"] if rid in debug]
    for method in JUDGE_METHODS:
        picks = [
            (first_hyp(state["judge"][rid].get(method, {}).get("hyps", [])), debug[rid]["fault"])
            for rid in subset
            if method in state["judge"][rid]
        ]
        if picks:
            loc.add_row(*accuracy_row(f"{method} (local 0.5B judge)", picks))
    if subset:
        picks = [
            (
                first_hyp([h for h in debug[r]["hyps"] if h["method"] == "value_curve"]),
                debug[r]["fault"],
            )
            for r in subset
        ]
        loc.add_row(*accuracy_row("value_curve on the judge subset", picks))
    for name, pick in (
        (
            "binomial change point",
            lambda d: binomial_change_point(d["curve"], cfg["curve_repeats"]),
        ),
        ("last step with V > 0", lambda d: last_recoverable(d["curve"])),
    ):
        picks = [
            ({"agent": d["agents"][k], "step": k} if k is not None else None, d["fault"])
            for d in debug.values()
            for k in [pick(d)]
        ]
        loc.add_row(*accuracy_row(f"offline: {name} on the same V(k)", picks))
    console.print(loc)

    flips = Table(
        title="interventions from correct hypotheses (hypothesis step = fault step) vs resample controls"
    )
    for col in (
        "method",
        "fault kind",
        "correct hyps",
        "flipped (≥2/3 forks)",
        "control flipped (≥2/3)",
        "control success rate",
    ):
        flips.add_column(col, justify="right")
    kinds = sorted({d["fault"]["kind"] for d in debug.values()})
    for method in CURVE_METHODS:
        for kind in [*kinds, "all"]:
            tests = [
                t
                for d in debug.values()
                for t in d["tests"]
                if t["method"] == method
                and t["step"] == d["fault"]["step"]
                and kind in ("all", d["fault"]["kind"])
            ]
            n = len(tests)
            flipped = sum(majority(t["successes"], t["n"]) for t in tests)
            ctrl = sum(majority(t["control_successes"], t["control_n"]) for t in tests)
            rate = sum(t["control_successes"] for t in tests) / max(
                1, sum(t["control_n"] for t in tests)
            )
            flips.add_row(
                method,
                kind,
                str(n),
                f"{flipped}/{n} = {flipped / max(n, 1):.0%}",
                f"{ctrl}/{n} = {ctrl / max(n, 1):.0%}",
                f"{rate:.0%}",
            )
    console.print(flips)

    misses = [
        d
        for d in debug.values()
        if (first_hyp([h for h in d["hyps"] if h["method"] == "value_curve"]) or {}).get("step")
        != d["fault"]["step"]
    ]
    if misses:
        table = Table(title=f"value-curve misses ({len(misses)}; first 8 shown): V(k) per step")
        for col in ("fault", "guess", "V(0..n-1)"):
            table.add_column(col)
        for d in misses[:8]:
            guess = first_hyp([h for h in d["hyps"] if h["method"] == "value_curve"])
            curve = " ".join(
                f"{float(v):.2f}" for _, v in sorted(d["curve"].items(), key=lambda kv: int(kv[0]))
            )
            f = d["fault"]
            table.add_row(
                f"{f['kind']} @ {f['agent']} step {f['step']}",
                f"step {guess['step']}" if guess else "none",
                curve,
            )
        console.print(table)


# The arms that are the controls: re-running the step unchanged (`resample`) beside an arm.
CONTROL_ROLES = ("resample", "upgrade_control")


def _fork_stats(outcomes: list[dict[str, Any]]) -> tuple[int, int, float, int, float]:
    """forks, flips, mean progress, tokens, minutes of a list of outcome dicts."""
    n = len(outcomes)
    flips = sum(bool(o["success"]) for o in outcomes)
    progress = sum(o["progress_delta"] for o in outcomes) / n if n else 0.0
    tokens = sum(o["input_tokens"] + o["output_tokens"] for o in outcomes)
    minutes = sum(o["seconds"] for o in outcomes) / 60
    return n, flips, progress, tokens, minutes


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def arm_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per (role, method) arm: forks, flips with Wilson 95%, failures flipped, the resample
    controls at the same (run, step), the difference with Fisher's one-sided p and its Holm
    adjustment over the arms tested (one family's table is one family of tests), progress, cost."""
    from branchpoint.interventions.verdicts import fisher_exact_greater, wilson_interval

    groups: dict[tuple[str, str], list[tuple[str, int, list[dict[str, Any]]]]] = {}
    controls: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in records:
        seen: set[tuple[str, str, str]] = set()
        for arm in rec["arms"]:
            if arm["role"] in CONTROL_ROLES:
                controls[(rec["run_id"], arm["step"])] = arm["outcomes"]
            key = (arm["role"], arm["method"], arm["intervention_id"])
            if key in seen:
                continue
            seen.add(key)
            groups.setdefault((arm["role"], arm["method"]), []).append(
                (rec["run_id"], arm["step"], arm["outcomes"])
            )
    rows: list[list[str]] = []
    tested: list[tuple[int, float]] = []  # (row, Fisher p)
    for (role, method), arms in sorted(groups.items()):
        outcomes = [o for _, _, outs in arms for o in outs]
        ctrl = [o for run, step, _ in arms for o in controls.get((run, step), [])]
        n, flips, progress, tokens, minutes = _fork_stats(outcomes)
        c_n, c_flips, *_ = _fork_stats(ctrl)
        low, high = wilson_interval(flips, n)
        flipped_runs = len({run for run, _, outs in arms if any(o["success"] for o in outs)})
        control_role = role in CONTROL_ROLES
        p = fisher_exact_greater(flips, n, c_flips, c_n) if c_n and not control_role else None
        diff = flips / n - c_flips / c_n if n and c_n and not control_role else None
        if p is not None:
            tested.append((len(rows), p))
        rows.append(
            [
                role,
                method,
                str(len({run for run, _, _ in arms})),
                f"{flips}/{n} = {flips / max(n, 1):.0%} [{low:.2f}, {high:.2f}]",
                str(flipped_runs),
                "—" if control_role else f"{c_flips}/{c_n}",
                "—" if diff is None else f"{diff:+.0%}",
                "—" if p is None else _p_value(p),
                "—",  # Holm's adjustment, filled in below
                f"{progress:+.2f}",
                str(tokens),
                f"{minutes:.1f}",
            ]
        )
    for (row, _), adjusted in zip(tested, holm([p for _, p in tested]), strict=True):
        rows[row][8] = _p_value(adjusted)
    return rows


def blamed_vs_other_steps(records: list[dict[str, Any]]) -> list[list[str]]:
    """Per method: how often the best arm at the blamed step flips more forks than resampling at
    the run's other model steps does on average, and how often resampling at the blamed step
    itself does (the same arm at every step: the judge-free comparison). Real failures have no
    ground truth."""
    tally: dict[str, list[int]] = {}
    for rec in records:
        curve = {int(k): v for k, v in rec["curve"].items()}
        for hyp in rec["hypotheses"]:
            at = [
                a for a in rec["arms"] if a["step"] == hyp["step"] and a["method"] == hyp["method"]
            ]
            if not at:
                continue
            rates = {a["role"]: _rate(a["outcomes"]) for a in at}
            retry = curve.get(hyp["step"], rates.get("resample"))
            others = [v for k, v in curve.items() if k != hyp["step"]]
            t = tally.setdefault(hyp["method"], [0, 0, 0])
            # No value curve (or one model step): nothing to compare with.
            if not others or retry is None:
                continue
            mean = sum(others) / len(others)
            t[0] += max(rates.values()) > mean
            t[1] += retry > mean
            t[2] += 1
    return [
        [m, f"{w}/{n} = {w / n:.0%}", f"{r}/{n} = {r / n:.0%}"]
        if n
        else [m, "not measured (no value curve at other steps)", "—"]
        for m, (w, r, n) in sorted(tally.items())
    ]


def _rate(outcomes: list[dict[str, Any]]) -> float:
    return sum(o["success"] for o in outcomes) / max(len(outcomes), 1)


def real_tables(runs: dict[str, list[dict[str, Any]]], state: dict[str, Any], args: Any) -> None:
    """The bench_real tables as Markdown (what RESULTS.md quotes)."""
    from branchpoint.interventions.verdicts import wilson_interval

    run_rows = []
    for family, rows in runs.items():
        n = len(rows)
        ok = sum(bool(r["success"]) for r in rows)
        low, high = wilson_interval(ok, n)
        tokens = sum(r["input_tokens"] + r["output_tokens"] for r in rows)
        run_rows.append(
            [
                family,
                args.team_model,
                str(n),
                f"{ok}/{n} = {ok / max(n, 1):.0%} [{low:.2f}, {high:.2f}]",
                str(tokens),
                f"{sum(r['seconds'] for r in rows) / 60:.1f}",
            ]
        )
    console.print(
        _md(
            ["family", "team model", "tasks", "solved (Wilson 95%)", "tokens", "run minutes (sum)"],
            run_rows,
        ),
        soft_wrap=True,  # Markdown rows stay one line each, to paste into RESULTS.md
    )
    header = [
        "arm",
        "method / agent",
        "failures",
        "fork flips (Wilson 95%)",
        "failures flipped",
        "controls",
        "Δ vs controls",
        "Fisher p",
        "Holm p",
        "progress",
        "tokens",
        "fork minutes",
    ]
    for family in runs:
        records = [r for r in state["debug"].values() if r.get("family") == family]
        minutes = sum(r.get("minutes", 0.0) for r in records)
        console.print(f"\n{family}: {len(records)} failures debugged ({minutes:.0f} min wall)")
        console.print(_md(header, arm_rows(records)), soft_wrap=True)
        console.print(
            _md(
                [
                    "method",
                    "best arm at the blamed step beats retries at other steps",
                    "a retry at the blamed step beats retries at other steps",
                ],
                blamed_vs_other_steps(records),
            ),
            soft_wrap=True,
        )
