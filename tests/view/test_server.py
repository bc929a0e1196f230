"""The viewer's HTTP layer in-process (fast: a server thread, no browser): token, errors, forks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from branchpoint.errors import BranchpointError
from branchpoint.view.forks import intervention_from_form
from branchpoint.view.server import COOKIE, make_server

from . import tracedb

TOKEN = "test-token"


def serve(db: Path, allow_forks: bool) -> Iterator[str]:
    server, app = make_server(db, 0, allow_forks, token=TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        app.reader.close()
        if app.forks is not None:
            app.forks.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("server") / "traces.duckdb"
    tracedb.build(path)
    return path


@pytest.fixture(scope="module")
def read_only(db: Path) -> Iterator[str]:
    yield from serve(db, allow_forks=False)


@pytest.fixture(scope="module")
def with_forks(db: Path) -> Iterator[str]:
    yield from serve(db, allow_forks=True)


def client(base: str, token: bool = True) -> httpx.Client:
    return httpx.Client(base_url=base, cookies={COOKIE: TOKEN} if token else None, timeout=30)


def test_every_page_needs_the_token(read_only: str) -> None:
    answer = client(read_only, token=False).get("/")
    assert answer.status_code == 403 and "needs its token" in answer.text


def test_the_token_in_the_url_sets_a_same_site_cookie(read_only: str) -> None:
    answer = client(read_only, token=False).get(f"/?token={TOKEN}")
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "SameSite=Strict" in cookie and "HttpOnly" in cookie
    assert "script-src" not in answer.headers["content-security-policy"]
    assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_another_host_name_is_refused(read_only: str) -> None:
    answer = client(read_only).get("/", headers={"Host": "attacker.example:80"})
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "path", ["/run/no-such-run", "/run/no-such-run/tree", "/run/no-such-run/debug",
             "/compare/no-such-run"],
)  # fmt: skip
def test_an_unknown_run_is_a_404_page_naming_it(read_only: str, path: str) -> None:
    answer = client(read_only).get(path)
    assert answer.status_code == 404
    assert "404" in answer.text and "&#39;no-such-run&#39;" in answer.text


def test_an_unknown_sweep_and_an_unknown_path_are_404(read_only: str) -> None:
    assert client(read_only).get("/sweep/sweep-x").status_code == 404
    assert client(read_only).get("/nowhere").status_code == 404


def test_pages_answer(read_only: str) -> None:
    c = client(read_only)
    for path in ("/", "/?status=failed&page=1", "/run/run-root", "/run/run-fix/tree",
                 "/compare/run-fix", "/run/run-root/debug", "/sweeps", "/sweep/sweep-1"):  # fmt: skip
        assert c.get(path).status_code == 200, path
    assert c.get("/?page=abc").status_code == 400


def test_a_read_only_viewer_shows_no_fork_form_and_refuses_forks(read_only: str, db: Path) -> None:
    c = client(read_only)
    assert "Fork this run" not in c.get("/run/run-root").text
    before = db.stat().st_mtime_ns
    answer = c.post("/run/run-root/fork", data={"token": TOKEN, "step": "2", "kind": "resample"})
    assert answer.status_code == 403 and "--allow-forks" in answer.text
    assert db.stat().st_mtime_ns == before


def test_a_fork_without_the_token_is_refused_and_nothing_is_written(
    with_forks: str, db: Path
) -> None:
    before = db.stat().st_mtime_ns
    form = {"step": "2", "kind": "resample", "repeats": "1"}
    # The session cookie alone is not enough: another site's form would carry it too.
    answer = client(with_forks).post("/run/run-root/fork", data=form)
    assert answer.status_code == 403
    answer = client(with_forks, token=False).post("/run/run-root/fork", data={**form, "token": "x"})
    assert answer.status_code == 403
    assert db.stat().st_mtime_ns == before


def test_a_fork_form_with_bad_fields_is_a_400_and_starts_nothing(with_forks: str) -> None:
    answer = client(with_forks).post(
        "/run/run-root/fork", data={"token": TOKEN, "step": "99", "kind": "resample"}
    )
    assert answer.status_code == 400 and "out of range" in answer.text


def test_the_fork_form_is_prefilled_from_the_chosen_step(with_forks: str) -> None:
    page = client(with_forks).get("/run/run-root?fork_step=1").text
    assert "Fork this run" in page and 'name="token" value="test-token"' in page
    assert '<textarea name="text">15*8 = 120</textarea>' in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "swap_model", "step": "1"}, "unknown intervention kind"),
        ({"kind": "resample", "step": "x"}, "whole numbers"),
        ({"kind": "resample", "step": "1", "repeats": "11"}, "between 1 and 10"),
        ({"kind": "instruct", "step": "1", "text": "  "}, "needs a text"),
    ],
)
def test_fork_form_validation(form: dict[str, str], message: str) -> None:
    with pytest.raises(BranchpointError, match=message):
        intervention_from_form(form, n_steps=5)


def test_fork_form_to_intervention() -> None:
    intervention, repeats = intervention_from_form(
        {"kind": "replace_message", "step": "2", "text": "a\r\nb", "repeats": "3"}, n_steps=5
    )
    assert (intervention.kind, intervention.step, intervention.content, repeats) == (  # type: ignore[union-attr]
        "replace_message", 2, "a\nb", 3,
    )  # fmt: skip


def test_view_and_report_commands_refuse_a_missing_database_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from branchpoint.cli import app

    missing = str(tmp_path / "absent.duckdb")
    for args in (["view", "--db", missing], ["report", "run-x", "--db", missing]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "no trace database at" in lines[0]
    assert not list(tmp_path.iterdir())


def test_report_needs_a_run_or_a_sweep(db: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from branchpoint.cli import app

    result = CliRunner().invoke(app, ["report", "--db", str(db), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "give a RUN_ID or --sweep ID" in result.output
    result = CliRunner().invoke(
        app, ["report", "run-root", "--db", str(db), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 0
