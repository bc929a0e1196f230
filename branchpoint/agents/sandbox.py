"""Run untrusted Python (LLM-written code, HumanEval checks) in a limited, network-less subprocess.

Layers, strongest available first: a fresh temporary working folder; RLIMIT_AS / RLIMIT_CPU;
a new session whose whole process group is killed at the wall-clock deadline; `unshare` into
new network and PID namespaces (no interface but a downed loopback, and every process dies with
the program) or, where namespaces are unavailable, a prelude that refuses AF_INET sockets; and a
per-run `pids` cgroup (root) or RLIMIT_NPROC (non-root) so a fork bomb hits a ceiling.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from branchpoint.errors import TaskFileError
from branchpoint.model import ToolCall

OUTPUT_CAP = 8192  # bytes of stdout+stderr kept: the head and the tail (tracebacks end there)
_TAIL = 2048
MAX_PROCESSES = 64
_PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")

_NO_NETWORK_PRELUDE = """
import socket as _socket
class _NoNetSocket(_socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, _socket.AF_INET, _socket.AF_INET6):
            raise PermissionError("network access is disabled in the branchpoint sandbox")
        super().__init__(family, type, proto, fileno)
_socket.socket = _NoNetSocket
"""
# Runs the program file as __main__ under its real path, so tracebacks show its source lines.
_RUNNER = """
import sys
_path = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, "")
with open(_path, encoding="utf-8") as _f:
    _code = compile(_f.read(), _path, "exec")
exec(_code, {"__name__": "__main__", "__file__": _path, "__builtins__": __builtins__})
"""
_PYTHON_FENCES = {"", "python", "python3", "py"}


def extract_code_blocks(text: str) -> list[str]:
    """The bodies of ```python / ```py / bare ``` fences in `text`, in order."""
    blocks: list[str] = []
    body: list[str] | None = None
    language = ""
    for line in text.splitlines():
        stripped = line.strip()
        if body is None:
            if stripped.startswith("```"):
                body, language = [], stripped[3:].strip().lower()
            continue
        if stripped.endswith("```"):
            body.append(line.rstrip()[:-3])
            code = "\n".join(body).strip("\n")
            if language in _PYTHON_FENCES and code.strip():
                blocks.append(code)
            body = None
        else:
            body.append(line)
    return blocks


def render_output(head: bytes, tail: bytes, total: int) -> str:
    """Captured bytes as text, marking how much of the middle was dropped."""
    text = head.decode("utf-8", errors="replace")
    if total > len(head) + len(tail):
        text += f"\n... [{total - len(head) - len(tail)} bytes of output omitted] ...\n"
    return text + tail.decode("utf-8", errors="replace")


def exit_reason(returncode: int | None, timed_out: bool, timeout_s: float) -> str | None:
    """Why a sandboxed program failed, or None when it exited cleanly."""
    if timed_out:
        return f"killed: wall-clock timeout after {timeout_s:g} s"
    if returncode == 0:
        return None
    if returncode is not None and returncode < 0:
        sig = signal.Signals(-returncode)
        hint = {signal.SIGXCPU: " (CPU time limit)", signal.SIGKILL: " (killed)"}.get(sig, "")
        return f"terminated by {sig.name}{hint}"
    return f"exit code {returncode}"


@functools.cache
def _namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the program no network and its own PID space, if they work."""
    base = ("unshare", "--net", "--pid", "--fork", "--kill-child")
    prefix = base if os.geteuid() == 0 else ("unshare", "--map-root-user", *base[1:])
    try:
        probe = subprocess.run([*prefix, "true"], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


def _pids_cgroup_available() -> bool:
    return os.geteuid() == 0 and os.access(_PIDS_CGROUP_ROOT / "cgroup.procs", os.W_OK)


@contextlib.contextmanager
def _pids_cgroup(max_pids: int) -> Iterator[Path | None]:
    """A fresh cgroup-v1 `pids` group capped at `max_pids`; yields its cgroup.procs file."""
    if not _pids_cgroup_available():
        yield None
        return
    group = _PIDS_CGROUP_ROOT / f"branchpoint-sandbox-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    try:
        (group / "pids.max").write_text(str(max_pids))
        yield group / "cgroup.procs"
    finally:
        _empty_cgroup(group)


def _empty_cgroup(group: Path) -> None:
    """Kill whatever is left in the group and remove it (a busy group is left behind)."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        if not pids:
            with contextlib.suppress(OSError):
                group.rmdir()
                return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _limiter(memory_mb: int, cpu_s: int, cgroup_procs: Path | None) -> Callable[[], None]:
    """The preexec_fn: resource limits, then joining the pids cgroup (before exec)."""
    memory = memory_mb * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if cgroup_procs is not None:
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        elif os.geteuid() != 0:
            # Counted per user, so leave room for the caller's own processes.
            nproc = _user_process_count() + MAX_PROCESSES
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


def _write_files(workdir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = (workdir / name).resolve()
        if Path(name).is_absolute() or not target.is_relative_to(workdir.resolve()):
            raise TaskFileError(
                f"task file name {name!r} must be a relative path inside the workspace; "
                "rename it in the task's files"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _collect(proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes, int, bool]:
    """Read the merged output until EOF or the deadline; returns head, tail, total, timed_out."""
    assert proc.stdout is not None
    head, tail, total = bytearray(), bytearray(), 0
    head_cap = OUTPUT_CAP - _TAIL
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(head), bytes(tail), total, True
            if not sel.select(timeout=min(remaining, 0.25)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return bytes(head), bytes(tail), total, False
            total += len(chunk)
            room = head_cap - len(head)
            head += chunk[:room]
            tail = (tail + chunk[max(room, 0) :])[-_TAIL:]


def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
) -> ToolCall:
    """Run `code` as a script in a fresh folder holding `files`; never hangs past `timeout_s`."""
    started = time.monotonic()
    prefix = _namespace_prefix()
    runner = _RUNNER if prefix else _NO_NETWORK_PRELUDE + _RUNNER
    with (
        tempfile.TemporaryDirectory(prefix="branchpoint-sandbox-") as root,
        _pids_cgroup(MAX_PROCESSES) as cgroup_procs,
    ):
        workdir = Path(root) / "work"
        workdir.mkdir()
        _write_files(workdir, files or {})
        program = Path(root) / "main.py"
        program.write_text(code, encoding="utf-8")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir)}
        env["TMPDIR"] = str(workdir)
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-I", "-c", runner, str(program)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Limits must bind the child alone; the hook only calls setrlimit and write(2).
            preexec_fn=_limiter(memory_mb, int(timeout_s) + 1, cgroup_procs),  # noqa: PLW1509
        )
        try:
            head, tail, total, timed_out = _collect(proc, started + timeout_s)
            if not timed_out:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, started + timeout_s - time.monotonic()))
                timed_out = proc.poll() is None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    output = render_output(head, tail, total)
    reason = exit_reason(returncode, timed_out, timeout_s)
    if reason:
        output = f"{output.rstrip()}\n[sandbox] {reason}".lstrip("\n")
    return ToolCall(
        tool="python",
        input=code,
        output=output,
        ok=reason is None,
        seconds=round(time.monotonic() - started, 3),
    )


def humaneval_program(completion: str, test: str, entry_point: str) -> str:
    """The script that checks a HumanEval completion: the code, the tests, then `check(f)`."""
    return f"{completion}\n\n{test}\n\ncheck({entry_point})\n"


def run_humaneval(completion: str, test: str, entry_point: str, *, timeout_s: float = 10) -> bool:
    """Whether `completion` (full code defining `entry_point`) passes the HumanEval `test`."""
    return run_python(humaneval_program(completion, test, entry_point), timeout_s=timeout_s).ok
