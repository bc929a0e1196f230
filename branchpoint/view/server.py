"""`branchpoint view`: a local web app over the trace database, bound to 127.0.0.1.

The standard library's threading HTTP server; each request reads through `queries` (the
read-only path of `branchpoint sql`) and renders a page with `pages`. Every request needs the
per-session token printed at start (in the URL once, then a same-site cookie), like Jupyter; a
fork form must carry the token in its body too, so another site cannot post one.
"""

from __future__ import annotations

import hmac
import re
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from branchpoint.errors import (
    BranchpointError,
    DatabaseBusyError,
    UnknownRunError,
    UnknownSweepError,
)
from branchpoint.telemetry.query import MissingDatabaseError
from branchpoint.view import pages, queries
from branchpoint.view.forks import ForkLauncher, intervention_from_form
from branchpoint.view.snapshot import TraceReader

HOST = "127.0.0.1"
COOKIE = "branchpoint_token"
MAX_FORM_BYTES = 1_000_000
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RUN_PAGE_SIZE = 100
TREE_LIMIT = 500


class HttpError(Exception):
    """A request that ends in an error page."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ViewerApp:
    """What every request needs: the database reader, the token, and the fork launcher."""

    reader: TraceReader
    token: str
    forks: ForkLauncher | None

    @property
    def db_label(self) -> str:
        taken = self.reader.taken_at
        return f"{self.reader.db_path}" + (f" · as of {taken:%H:%M:%S}" if taken else "")


@dataclass(frozen=True)
class Redirect:
    """A handler's answer that sends the browser elsewhere (after a POST)."""

    location: str


ROUTES: list[tuple[str, re.Pattern[str], str]] = []


def route(method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler method for `method` requests whose path matches `pattern`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append((method, re.compile(f"^{pattern}$"), fn.__name__))
        return fn

    return register


def _int(query: dict[str, str], name: str, default: int = 1) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number") from None


class RequestHandler(BaseHTTPRequestHandler):
    """Routes a request to a page; errors become an HTML error page with the right status."""

    app: ViewerApp
    server_version = "branchpoint-view"

    # -- plumbing --------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL, not every request."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._check_host()
            cookie = self._authorise(query)
            for verb, pattern, name in ROUTES:
                match = pattern.match(url.path)
                if match and verb == method:
                    body = getattr(self, name)(match, query)
                    if isinstance(body, Redirect):
                        self._redirect(body.location)
                    else:
                        self._send(HTTPStatus.OK, body, cookie)
                    return
            raise HttpError(HTTPStatus.NOT_FOUND, f"no page at {unquote(url.path)!r}")
        except HttpError as exc:
            self._error(exc.status, str(exc))
        except (UnknownRunError, UnknownSweepError) as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except (MissingDatabaseError, DatabaseBusyError) as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except BranchpointError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))

    def _check_host(self) -> None:
        """Refuse other host names (a DNS-rebinding page would send its own)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in (HOST, "localhost"):
            raise HttpError(HTTPStatus.FORBIDDEN, f"unexpected Host header {host!r}")

    def _authorise(self, query: dict[str, str]) -> str | None:
        """Accept the token from the URL (and set it as a cookie) or from the cookie."""
        given = query.get("token")
        if given is not None and hmac.compare_digest(given, self.app.token):
            return given
        cookies = SimpleCookie(self.headers.get("Cookie") or "")
        jar = cookies.get(COOKIE)
        if jar is not None and hmac.compare_digest(jar.value, self.app.token):
            return None
        raise HttpError(
            HTTPStatus.FORBIDDEN,
            "this viewer needs its token: open the URL that `branchpoint view` printed",
        )

    def _send(self, status: HTTPStatus, body: str, set_token: str | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if set_token is not None:
            self.send_header(
                "Set-Cookie", f"{COOKIE}={set_token}; HttpOnly; SameSite=Strict; Path=/"
            )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(
            status, pages.error_page(status.value, status.phrase, message, self.app.db_label)
        )

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "form too large")
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    # -- pages -----------------------------------------------------------------------------

    @route("GET", "/")
    def runs(self, match: re.Match[str], query: dict[str, str]) -> str:
        filters = queries.RunFilter(**{k: query.get(k, "") for k in queries.RUN_FILTERS})
        view = queries.list_runs(self.app.reader, filters, _int(query, "page"))
        return pages.runs_page(view, filters, self.app.db_label)

    @route("GET", "/run/(?P<run_id>[^/]+)")
    def run(self, match: re.Match[str], query: dict[str, str]) -> str:
        run_id = unquote(match["run_id"])
        reader = self.app.reader
        run = queries.load_run_row(reader, run_id)
        segments = queries.run_segments(reader, run_id)
        steps = queries.run_steps(reader, segments, _int(query, "page"), RUN_PAGE_SIZE)
        form = None
        if self.app.forks is not None:
            form = self._fork_form(run, steps, _int(query, "fork_step", -1))
        trials = queries.run_trials(reader, run_id, segments)
        return pages.run_page(run, steps, trials, self.app.db_label, form)

    def _fork_form(self, run: queries.Row, steps: queries.StepsView, step: int) -> pages.ForkForm:
        chosen = next((s for s in steps.rows if s["step"] == step), None)
        return pages.ForkForm(
            action=f"{pages.ServerLinks().run(run['run_id'])}/fork",
            token=self.app.token,
            step=max(step, 0),
            kind="replace_message",
            text=chosen["content"] if chosen else "",
        )

    @route("GET", "/run/(?P<run_id>[^/]+)/tree")
    def tree(self, match: re.Match[str], query: dict[str, str]) -> str:
        run_id = unquote(match["run_id"])
        queries.load_run_row(self.app.reader, run_id)
        root, rows = queries.fork_tree_rows(self.app.reader, run_id, TREE_LIMIT)
        return pages.tree_page(run_id, root, rows, TREE_LIMIT, self.app.db_label)

    @route("GET", "/compare/(?P<run_id>[^/]+)")
    def compare(self, match: re.Match[str], query: dict[str, str]) -> str:
        comparison = queries.compare_fork(
            self.app.reader, unquote(match["run_id"]), _int(query, "page"), RUN_PAGE_SIZE
        )
        return pages.compare_page(comparison, self.app.db_label)

    @route("GET", "/run/(?P<run_id>[^/]+)/debug")
    def debug(self, match: re.Match[str], query: dict[str, str]) -> str:
        run_id = unquote(match["run_id"])
        run = queries.load_run_row(self.app.reader, run_id)
        return pages.debug_page(run, queries.debug_view(self.app.reader, run_id), self.app.db_label)

    @route("GET", "/sweeps")
    def sweeps(self, match: re.Match[str], query: dict[str, str]) -> str:
        return pages.sweeps_page(queries.list_sweeps(self.app.reader), self.app.db_label)

    @route("GET", "/sweep/(?P<sweep_id>[^/]+)")
    def sweep(self, match: re.Match[str], query: dict[str, str]) -> str:
        view = queries.sweep_view(self.app.reader, unquote(match["sweep_id"]))
        return pages.sweep_page(view, self.app.db_label)

    @route("POST", "/run/(?P<run_id>[^/]+)/fork")
    def fork(self, match: re.Match[str], query: dict[str, str]) -> Redirect:
        form = self._form()
        if not hmac.compare_digest(form.get("token", ""), self.app.token):
            raise HttpError(HTTPStatus.FORBIDDEN, "fork refused: the form carries no valid token")
        if self.app.forks is None:
            raise HttpError(
                HTTPStatus.FORBIDDEN,
                "forks are off: this viewer is read-only (start it with --allow-forks)",
            )
        run_id = unquote(match["run_id"])
        run = queries.load_run_row(self.app.reader, run_id)
        intervention, repeats = intervention_from_form(form, int(run["total_steps"]))
        before = self._forks_of(run_id, intervention.intervention_id)
        job = self.app.forks.launch(run_id, intervention, repeats, before)
        return Redirect(f"/job/{job.job_id}")

    @route("GET", "/job/(?P<job_id>[0-9a-f]+)")
    def job(self, match: re.Match[str], query: dict[str, str]) -> str:
        jobs = self.app.forks.jobs if self.app.forks else {}
        job = jobs.get(match["job_id"])
        if job is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no fork job {match['job_id']!r}")
        if job.state != "running" and not job.new_runs:
            found = self._forks_of(job.run_id, job.intervention_id)
            job.new_runs = sorted(found - job.runs_before)
        return pages.job_page(job, self.app.db_label)

    def _forks_of(self, run_id: str, intervention_id: str) -> frozenset[str]:
        rows = self.app.reader.query(
            "SELECT run_id FROM runs WHERE parent_run_id = ? AND intervention_id = ?",
            [run_id, intervention_id],
        )
        return frozenset(r["run_id"] for r in rows)


def make_server(
    db_path: Path, port: int, allow_forks: bool, token: str | None = None
) -> tuple[ThreadingHTTPServer, ViewerApp]:
    """A server bound to 127.0.0.1:`port` (0: any free port) over `db_path`, not yet serving."""
    reader = TraceReader(db_path)
    app = ViewerApp(
        reader, token or secrets.token_urlsafe(24), ForkLauncher(db_path) if allow_forks else None
    )
    handler = type("BoundHandler", (RequestHandler,), {"app": app})
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        reader.close()  # its snapshot copy
        if app.forks is not None:
            app.forks.close()
        raise BranchpointError(
            f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port (0 picks a "
            "free one)"
        ) from None
    server.daemon_threads = True
    return server, app


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(db_path: Path, port: int, allow_forks: bool, out: TextIO = sys.stdout) -> None:
    """Serve until interrupted; prints the URL with the session's token."""
    server, app = make_server(db_path, port, allow_forks)
    url = f"http://{HOST}:{server.server_address[1]}/?token={app.token}"
    mode = "forks allowed" if allow_forks else "read-only"
    print(f"branchpoint view ({mode}) on {db_path}: {url}", file=out, flush=True)
    if threading.current_thread() is threading.main_thread():
        # `kill` ends it like Ctrl-C: the snapshot copies are removed either way.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.reader.close()
        if app.forks is not None:
            app.forks.close()
