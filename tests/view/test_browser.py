"""The viewer in a real headless Chromium, over a database filled by real `sim` runs, forks and a
debug (through `bp.session`, in-process), with the server started as `branchpoint view`. Forks
launched from the page and the concurrent `branchpoint run` use the CLI, so Ray.

Screenshots of every page land in tests/view/artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from branchpoint.model import Fault, Task

from .browser import Viewer, branchpoint, chromium, requested_urls, screenshot, sql

pytestmark = [pytest.mark.browser, pytest.mark.ray]

TASK = Task(
    task_id="t-wage",
    question="Leo earns $15 per hour for 8 hours a day over 5 days and spends $200. What is left?",
    answer="400",
    solution="15*8=<<15*8=120>>120\n120*5=<<120*5=600>>600\n600-200=<<600-200=400>>400\n#### 400",
)
FAULT = Fault(agent="Solver", step=2, kind="wrong_operand", recurrence=0.0)  # resampling fixes it
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
JOB_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Filled:
    """The database the tests browse and the ids in it."""

    db: Path
    faulty: str
    fix: str
    control: str
    hostile: str
    sweep: str
    correct: str


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """Through the public API, in-process: a faulty and a clean sim run, a fix fork, a control
    fork, a fork whose message is an XSS payload, and a value-curve debug of the faulty run."""
    import branchpoint as bp

    db = tmp_path_factory.mktemp("browser") / "traces.duckdb"
    with bp.session(db, model="sim") as s:
        plan = bp.plan_runs(TASK, team="math", model="sim", seed=1, fault_rate=0.0)
        [clean] = s.run_plan(plan)
        [faulty] = s.run_plan(replace(plan, faults={TASK.task_id: (FAULT,)}))
        correct = s.steps(clean)[FAULT.step].content
        [fix] = s.fork(faulty, bp.replace_message(FAULT.step, correct))
        [control] = s.fork(faulty, bp.resample(FAULT.step))
        [hostile] = s.fork(clean, bp.replace_message(1, XSS))
        sweep = s.debug(faulty, methods=["value_curve"], repeats=2, curve_repeats=2).sweep_id
    return Filled(db, faulty.run_id, fix.run_id, control.run_id, hostile.run_id, sweep, correct)


@pytest.fixture(scope="module")
def viewer(filled: Filled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    server = Viewer(filled.db, tmp_path_factory.mktemp("viewer") / "view.log", "--allow-forks")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(viewer: Viewer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("profile")) as driver:
        driver.get(viewer.url)  # type: ignore[attr-defined]  # sets the token cookie
        yield driver


def attr(driver: object, css: str, name: str) -> list[str]:
    """The attribute `name` of every element matching `css`, in document order."""
    from selenium.webdriver.common.by import By

    return [e.get_attribute(name) for e in driver.find_elements(By.CSS_SELECTOR, css)]  # type: ignore[attr-defined]


def open_page(driver: object, viewer: Viewer, path: str, shot: str | None = None) -> str:
    driver.get(viewer.base + path)  # type: ignore[attr-defined]
    if shot:
        screenshot(driver, shot)
    return str(driver.page_source)  # type: ignore[attr-defined]


def listed_runs(driver: object, viewer: Viewer) -> list[str]:
    """Every run id on the runs page, following its pages."""
    seen, page = [], 1
    while True:
        html = open_page(driver, viewer, f"/?page={page}", "runs" if page == 1 else None)
        seen += attr(driver, "tr.run-row", "data-run-id")
        if "next &rarr;" not in html and "next →" not in html:
            return seen
        page += 1


def test_runs_page_lists_every_run(browser: object, viewer: Viewer, filled: Filled) -> None:
    expected = {r["run_id"] for r in sql(filled.db, "SELECT run_id FROM runs")}
    listed = listed_runs(browser, viewer)
    assert len(listed) == len(expected) and set(listed) == expected


def test_run_page_shows_every_step_in_order(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    html = open_page(browser, viewer, f"/run/{filled.faulty}", "run")
    steps = sql(
        filled.db, f"SELECT step, content FROM steps WHERE run_id = '{filled.faulty}' ORDER BY step"
    )
    assert attr(browser, "tr.step", "data-step") == [s["step"] for s in steps]
    from selenium.webdriver.common.by import By

    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tr.step pre.content")]  # type: ignore[attr-defined]
    assert shown == [s["content"].strip() for s in steps]
    assert f"fault: {FAULT.kind}" in html
    assert attr(browser, "tr.step.fault", "data-step") == [str(FAULT.step)]


def test_fork_tree_shows_the_parent_and_its_forks(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    open_page(browser, viewer, f"/run/{filled.faulty}/tree", "fork-tree")
    forks = sql(filled.db, f"SELECT run_id FROM forks WHERE root_run_id = '{filled.faulty}'")
    rows = dict(
        zip(
            attr(browser, "tr.tree-row", "data-run-id"),
            attr(browser, "tr.tree-row", "data-parent"),
            strict=True,
        )
    )
    assert set(rows) == {filled.faulty} | {f["run_id"] for f in forks}
    assert rows[filled.faulty] == "" and rows[filled.fix] == filled.faulty
    assert set(attr(browser, "g.tree-node", "data-run-id")) == set(rows)


def test_side_by_side_shows_the_intervention_and_highlights_the_first_divergence(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, viewer, f"/compare/{filled.fix}", "side-by-side")
    box = browser.find_element(By.ID, "intervention").text  # type: ignore[attr-defined]
    assert "replace_message" in box and filled.correct.strip() in box
    [first] = browser.find_elements(By.CSS_SELECTOR, "tr.pair.first-divergence")  # type: ignore[attr-defined]
    assert first.get_attribute("data-step") == str(FAULT.step)
    background = first.find_element(By.TAG_NAME, "td").value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


def test_verdict_table_matches_the_verdicts_table(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, viewer, f"/run/{filled.faulty}/debug", "debugging")
    verdicts = sql(filled.db, "SELECT * FROM verdicts")
    assert verdicts, "the debug sweep stored no verdict"
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.verdict")  # type: ignore[attr-defined]
    assert len(rows) == len(verdicts)
    by_key = {
        (r.get_attribute("data-hypothesis-id"), r.get_attribute("data-intervention-id")): r
        for r in rows
    }
    for v in verdicts:
        cells = [
            c.text
            for c in by_key[(v["hypothesis_id"], v["intervention_id"])].find_elements(
                By.TAG_NAME, "td"
            )
        ]
        assert cells[5] == v["label"]
        assert cells[6] == f"{v['successes']}/{v['n']}"
        assert cells[7] == f"[{float(v['wilson_low']):.2f}, {float(v['wilson_high']):.2f}]"
        assert cells[10] == f"{v['control_successes']}/{v['control_n']}"
        assert cells[11] == f"{float(v['control_rate']):.2f}"


def test_value_curve_plot_has_one_point_per_step(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    open_page(browser, viewer, f"/run/{filled.faulty}/debug")
    [n] = sql(filled.db, f"SELECT count(*) AS n FROM steps WHERE run_id = '{filled.faulty}'")
    points = attr(browser, "circle.vk-point", "data-step")
    assert points == [str(k) for k in range(int(n["n"]))]
    hypothesis = sql(
        filled.db,
        f"SELECT step FROM hypotheses WHERE run_id = '{filled.faulty}' AND method = 'value_curve'",
    )
    assert attr(browser, "line.change-point", "data-step") == [h["step"] for h in hypothesis]


def test_sweep_pages(browser: object, viewer: Viewer, filled: Filled) -> None:
    open_page(browser, viewer, "/sweeps", "sweeps")
    assert filled.sweep in attr(browser, "table.sweeps a", "textContent")
    html = open_page(browser, viewer, f"/sweep/{filled.sweep}", "sweep")
    [progress] = sql(
        filled.db, f"SELECT count(*) AS done FROM outcomes WHERE sweep_id = '{filled.sweep}'"
    )
    assert f"done {progress['done']}" in html
    assert attr(browser, "g.interval-row.control", "data-label")


def test_hostile_step_content_renders_inert(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    html = open_page(browser, viewer, f"/run/{filled.hostile}", "hostile-content")
    assert browser.execute_script("return window.__pwned === undefined")  # type: ignore[attr-defined]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    open_page(browser, viewer, f"/compare/{filled.hostile}")
    assert browser.execute_script("return window.__pwned === undefined")  # type: ignore[attr-defined]


def test_unknown_run_is_a_404_page_naming_it(browser: object, viewer: Viewer) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, viewer, "/run/run-does-not-exist", "not-found")
    text = browser.find_element(By.CSS_SELECTOR, ".error-page").text  # type: ignore[attr-defined]
    assert "404" in text and "run-does-not-exist" in text
    status = httpx.get(
        f"{viewer.base}/run/run-does-not-exist", cookies={"branchpoint_token": viewer.token}
    )
    assert status.status_code == 404


def count_forks(filled: Filled) -> int:
    [row] = sql(
        filled.db, f"SELECT count(*) AS n FROM runs WHERE parent_run_id = '{filled.faulty}'"
    )
    return int(row["n"])


def test_fork_without_the_token_is_refused_and_writes_nothing(
    viewer: Viewer, filled: Filled
) -> None:
    before = count_forks(filled)
    answer = httpx.post(
        f"{viewer.base}/run/{filled.faulty}/fork",
        data={"step": str(FAULT.step), "kind": "resample", "repeats": "1"},
        cookies={"branchpoint_token": viewer.token},  # a cross-site post carries the cookie too
    )
    assert answer.status_code == 403
    time.sleep(2)
    assert count_forks(filled) == before


def job_state(driver: object) -> str | None:
    """The fork job's status on its page (None while the page is reloading)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, ".job-status").text)  # type: ignore[attr-defined]
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    except WebDriverException as exc:
        # Chromium's word for an element whose page reloaded between finding and reading it.
        if "does not belong to the document" in str(exc.msg):
            return None
        raise


def test_fork_launched_from_the_page_creates_a_run_that_sql_sees(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, viewer, f"/run/{filled.faulty}?fork_step={FAULT.step}")
    form = browser.find_element(By.CSS_SELECTOR, "form.fork")  # type: ignore[attr-defined]
    text = form.find_element(By.NAME, "text")
    text.clear()
    text.send_keys(filled.correct)
    screenshot(browser, "fork-form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job_state(browser) in ("running", None):  # the page reloads itself meanwhile
        assert time.monotonic() < deadline, "the fork did not finish"
        time.sleep(2)
    screenshot(browser, "fork-job")
    assert job_state(browser) == "succeeded", browser.page_source  # type: ignore[attr-defined]
    new = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "p a.mono")]  # type: ignore[attr-defined]
    assert new
    rows = sql(
        filled.db, f"SELECT run_id, status FROM runs WHERE parent_run_id = '{filled.faulty}'"
    )
    assert {r["run_id"]: r["status"] for r in rows}[new[0]] == "succeeded"


def test_report_opened_from_a_file_renders_with_no_network(
    browser: object, filled: Filled, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "report.html"
    done = branchpoint("report", filled.faulty, "--db", str(filled.db), "-o", str(out))
    assert done.returncode == 0, done.stderr
    requested_urls(browser)  # drop what earlier pages requested
    browser.get(out.as_uri())  # type: ignore[attr-defined]
    screenshot(browser, "report")
    urls = requested_urls(browser)
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []
    steps = sql(filled.db, f"SELECT step FROM steps WHERE run_id = '{filled.faulty}' ORDER BY step")
    section = browser.find_element(By.ID, f"run-{filled.faulty}")  # type: ignore[attr-defined]
    shown = [
        e.get_attribute("data-step") for e in section.find_elements(By.CSS_SELECTOR, "tr.step")
    ]
    assert shown == [s["step"] for s in steps]
    assert browser.find_elements(By.CSS_SELECTOR, "tr.verdict")  # type: ignore[attr-defined]
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # type: ignore[attr-defined]


def test_viewer_keeps_serving_during_a_concurrent_run(
    browser: object, viewer: Viewer, filled: Filled
) -> None:
    import subprocess
    import sys

    before = set(listed_runs(browser, viewer))
    run = subprocess.Popen(
        [sys.executable, "-m", "branchpoint", "run", "--model", "sim", "--limit", "3",
         "--db", str(filled.db)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    statuses = []
    with httpx.Client(base_url=viewer.base, cookies={"branchpoint_token": viewer.token}) as client:
        while run.poll() is None:
            statuses.append(client.get("/", timeout=60).status_code)
            time.sleep(0.5)
    output = run.stdout.read() if run.stdout else ""
    assert run.returncode == 0, output
    assert statuses and set(statuses) == {200}, statuses
    after = set(listed_runs(browser, viewer))
    assert len(after - before) == 3
    screenshot(browser, "runs-after-concurrent-run")
