"""Run untrusted Python (LLM-written code, HumanEval checks) confined, limited and network-less.

The confinement is bubblewrap (agents/bubblewrap.py): an unprivileged user without capabilities
in its own mount, PID and network namespaces, where only the run's folder is writable. Around
it: RLIMIT_AS / RLIMIT_CPU / RLIMIT_FSIZE; a new session whose processes are killed at the
wall-clock deadline; a per-run `pids` cgroup (root) or RLIMIT_NPROC so a fork bomb hits a ceiling.

Where bubblewrap cannot run, code is refused unless the user opted into the weak mode
(`BRANCHPOINT_SANDBOX=weak`): `unshare` into new network and PID namespaces, or a prelude that
refuses AF_INET sockets, with the same limits but the host's files in view.
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from branchpoint.agents.bubblewrap import (
    SANDBOX_UID,
    bwrap_command,
    bwrap_problem,
    give_to_sandbox,
)
from branchpoint.errors import SandboxUnavailableError, TaskFileError
from branchpoint.model import Step, ToolCall
from branchpoint.settings import Settings

OUTPUT_CAP = 8192  # bytes of stdout+stderr kept: the head and the tail (tracebacks end there)
_TAIL = 2048
MAX_PROCESSES = 64
MAX_FILE_BYTES = 64 * 1024 * 1024  # RLIMIT_FSIZE: one file cannot fill the disk
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
# Wall-clock limit of one function-level program on its examples or its tests (HumanEval's own
# harness gives a problem 3 s): test calls take milliseconds, an endless loop waits it out.
TEST_TIMEOUT_S = 3.0
# How a program's output names its folder (each run gets a fresh one with a random name).
SHOWN_ROOT = "/sandbox"
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


# A stop sequence for agents whose reply is one program: the prose small models write after the
# code block (~a quarter of the 0.5B Coder's tokens) is never read, and it lengthens later prompts.
CLOSING_FENCE = "\n```\n"


def close_open_fence(text: str) -> str:
    """`text` with its last code fence closed, when a stop sequence cut the closing one off."""
    fences = sum(1 for line in text.splitlines() if line.strip().startswith("```"))
    return f"{text.rstrip()}\n```" if fences % 2 else text


def newest_code_block(steps: Sequence[Step]) -> str | None:
    """The last code block of the newest step that has one."""
    return next(
        (b for s in reversed(steps) for b in reversed(extract_code_blocks(s.content))), None
    )


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
    signum = -returncode if returncode is not None and returncode < 0 else 0
    if returncode is not None and 128 < returncode < 128 + signal.NSIG:
        signum = returncode - 128  # bubblewrap reports a child killed by a signal as 128 + N
    if signum:
        sig = signal.Signals(signum)
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


def _limiter(
    memory_mb: int, cpu_s: int, cgroup_procs: Path | None, nproc_uid: int | None
) -> Callable[[], None]:
    """The preexec_fn: resource limits, then joining the pids cgroup (before exec)."""
    memory = memory_mb * 1024 * 1024
    # Counted per user, so leave room for the processes that user already has.
    nproc = None if nproc_uid is None else _user_process_count(nproc_uid) + MAX_PROCESSES

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        if cgroup_procs is not None:
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _user_process_count(uid: int) -> int:
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


def sandbox_mode() -> str:
    """`strict` (bubblewrap, refusing to run without it) or `weak` (opted into explicitly)."""
    mode = Settings().sandbox
    if mode not in ("strict", "weak"):
        raise SandboxUnavailableError(
            f"BRANCHPOINT_SANDBOX={mode!r} is not a sandbox mode; use strict (the default) or weak"
        )
    if mode == "strict" and (problem := bwrap_problem()) is not None:
        raise SandboxUnavailableError(
            f"cannot confine generated code: {problem}; install bubblewrap "
            "(apt-get install bubblewrap), or set BRANCHPOINT_SANDBOX=weak to run it without "
            "file isolation"
        )
    return mode


def _launch(
    mode: str, root: Path, workdir: Path, env: dict[str, str]
) -> tuple[list[str], str, int | None]:
    """The command prefix, the runner script, and whose processes RLIMIT_NPROC counts."""
    if mode == "strict":
        give_to_sandbox(root)
        uid = SANDBOX_UID if os.geteuid() == 0 else os.getuid()
        return bwrap_command(root, workdir, env), _RUNNER, uid
    prefix = list(_namespace_prefix())
    return prefix, _RUNNER if prefix else _NO_NETWORK_PRELUDE + _RUNNER, os.getuid()


def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
) -> ToolCall:
    """Run `code` as a script in a fresh folder holding `files`; never hangs past `timeout_s`.

    Raises SandboxUnavailableError when the machine cannot confine it (see `sandbox_mode`)."""
    started = time.monotonic()
    mode = sandbox_mode()
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
        prefix, runner, nproc_uid = _launch(mode, Path(root), workdir, env)
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-I", "-c", runner, str(program)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Limits must bind the child alone; the hook only calls setrlimit and write(2).
            preexec_fn=_limiter(  # noqa: PLW1509
                memory_mb,
                int(timeout_s) + 1,
                cgroup_procs,
                None if cgroup_procs is not None else nproc_uid,
            ),
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
    # The folder's random name would reach a traceback, then the next prompt and its completion.
    output = render_output(head, tail, total).replace(root, SHOWN_ROOT)
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


def run_humaneval(
    completion: str, test: str, entry_point: str, *, timeout_s: float = TEST_TIMEOUT_S
) -> bool:
    """Whether `completion` (full code defining `entry_point`) passes the HumanEval `test`."""
    return run_python(humaneval_program(completion, test, entry_point), timeout_s=timeout_s).ok
