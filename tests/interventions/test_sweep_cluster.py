"""A sweep against a real two-node Ray cluster (`ray start --head` + a second `ray start --address`).

The spans of the fork runs must name both Ray nodes, and every planned sweep item must have an
outcome. The cluster uses token auth (Ray 2.60's default for new clusters): the same
`RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` go to both nodes and to the `branchpoint` driver.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import duckdb
import psutil
import pytest
from shared_data import needs_shared_data

pytestmark = [pytest.mark.cluster, pytest.mark.slow, needs_shared_data]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_test_first200.jsonl"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 180
OBJECT_STORE_BYTES = str(100 * 1024 * 1024)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_node(args: list[str], env: dict[str, str], temp_dir: Path, groups: list[int]) -> None:
    """`ray start ARGS` in a new session whose process group id is added to `groups` (for `stop_groups`)."""
    cmd = [
        str(BIN / "ray"),
        "start",
        *args,
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--disable-usage-stats",
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    groups.append(proc.pid)  # before waiting: a node that fails half-way is still stopped
    out, _ = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == 0, f"ray start failed:\n{out[-3000:]}"


def stop_groups(pgids: list[int]) -> None:
    """Kill the Ray processes of these process groups and everything they spawned.

    Like `ray stop --force`, but only for this cluster: other Ray clusters on the machine live on.
    """
    procs: set[psutil.Process] = set()
    for proc in psutil.process_iter():
        with suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) in pgids:
                procs.update([proc, *proc.children(recursive=True)])
    for proc in procs:
        with suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(procs), timeout=30)


class Cluster:
    """A head node on 127.0.0.1, to which worker nodes can be added; `stop` ends only its processes."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.temp = Path(
            tempfile.mkdtemp(prefix="bpray", dir="/tmp")
        )  # short: Ray's socket paths must fit
        self.groups: list[int] = []

    def start_head(self) -> None:
        """`ray start --head` with a `head_node` resource."""
        port = self.address.rsplit(":", 1)[1]
        head = ["--head", f"--port={port}", "--num-cpus=1", '--resources={"head_node": 1}']
        start_node([*head, "--include-dashboard=false"], self.env, self.temp / "head", self.groups)

    def add_worker(self) -> None:
        """Join a second node with its own `worker_node` resource and temp dir."""
        worker = [f"--address={self.address}", "--num-cpus=1", '--resources={"worker_node": 1}']
        start_node(worker, self.env, self.temp / "worker", self.groups)

    def stop(self) -> None:
        """Kill this cluster's processes and remove its temp dirs."""
        stop_groups(self.groups)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A running head node, stopped (with any added workers) at teardown."""
    running = Cluster()
    try:
        running.start_head()
        yield running
    finally:
        running.stop()


def branchpoint(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A `branchpoint` command as a subprocess."""
    return subprocess.Popen(
        [str(BIN / "branchpoint"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    """Wait for a command and return its output; fail with the output if it failed."""
    out, _ = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{out[-3000:]}"
    return out


NODES_OF_FORKS = """
SELECT count(DISTINCT node_id) FROM {view}
WHERE node_id <> '' AND run_id IN (SELECT run_id FROM runs WHERE sweep_id = ?)
"""


@pytest.mark.timeout(600)
def test_sweep_forks_run_on_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    db = tmp_path / "cluster.duckdb"
    # Seed failed sim runs through the head while the second node joins.
    seed = branchpoint(
        [
            "run",
            "--model",
            "sim",
            "--tasks",
            str(DATA),
            "--limit",
            "4",
            "--fault-rate",
            "1.0",
            "--address",
            cluster.address,
            "--db",
            str(db),
        ],
        cluster.env,
    )
    cluster.add_worker()
    finish(seed)

    out = finish(
        branchpoint(
            [
                "sweep",
                "--address",
                cluster.address,
                "--where",
                "status = 'failed'",
                "--methods",
                "ground_truth",
                "--repeats",
                "2",
                "--concurrency",
                "8",
                "--db",
                str(db),
            ],
            cluster.env,
        )
    )
    sweep_id = next(word for word in out.split() if word.startswith("sweep-"))

    with duckdb.connect(str(db), read_only=True) as con:
        step_nodes = con.execute(NODES_OF_FORKS.format(view="steps"), [sweep_id]).fetchone()[0]
        chat_nodes = con.execute(NODES_OF_FORKS.format(view="llm_calls"), [sweep_id]).fetchone()[0]
        planned = {
            r[0]
            for r in con.execute(
                "SELECT item_id FROM sweep_items WHERE sweep_id = ?", [sweep_id]
            ).fetchall()
        }
        done = {
            r[0]
            for r in con.execute(
                "SELECT split_part(fork_run_id, '.', 1) FROM outcomes WHERE sweep_id = ?",
                [sweep_id],
            ).fetchall()
        }
    assert planned, "the sweep planned no fork"
    assert done == planned, f"items without an outcome: {planned - done}"
    assert step_nodes == 2, f"fork steps ran on {step_nodes} node(s), expected both"
    assert chat_nodes == 2, f"fork LLM calls ran on {chat_nodes} node(s), expected both"
