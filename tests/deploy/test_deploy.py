"""Checks on deploy/: every manifest parses, installs what the README installs, and runs real CLI commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [doc for doc in docs if doc.get("kind") == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def pip_install_args(command: str) -> list[str]:
    """The arguments of the `pip install` in a shell command line, whatever pip is invoked as.

    `.venv/bin/pip install X`, `python -m pip install X` and `pip install X` all give `["X"]`;
    the install stops at the next `&&`, `;` or `|`.
    """
    words = shlex.split(command, posix=True)
    for i, word in enumerate(words[:-1]):
        if re.fullmatch(r"(\S*/)?pip(3(\.\d+)?)?", word) and words[i + 1] == "install":
            rest = words[i + 2 :]
            ends = [j for j, w in enumerate(rest) if w in {"&&", ";", "||", "|"}]
            return rest[: ends[0]] if ends else rest
    raise AssertionError(f"no pip install in: {command!r}")


def readme_install_args() -> list[str]:
    """The `pip install` arguments of the first ```bash block in README.md."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh|shell|console)\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no ```bash code block holding the install command"
    lines = [ln.lstrip("$ ").strip() for ln in block.group(1).splitlines()]
    installs = [ln for ln in lines if re.search(r"\bpip3?(\.\d+)? install\b", ln)]
    assert installs, "the first ```bash block of README.md has no pip install line"
    return pip_install_args(installs[0])


def test_pip_install_args_normalises_the_venv_prefix() -> None:
    line = "python3.11 -m venv .venv && .venv/bin/pip install -e '.[local,postgres]' && x demo"
    assert pip_install_args(line) == ["-e", ".[local,postgres]"]
    assert pip_install_args("python -m pip install -e .") == ["-e", "."]
    with pytest.raises(AssertionError):
        pip_install_args("pip list")


def test_dockerfile_runs_the_readme_install_command() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert "build-essential" in dockerfile and "cmake" in dockerfile
    runs = [ln[len("RUN ") :] for ln in dockerfile.splitlines() if ln.startswith("RUN ")]
    pip_runs = [r for r in runs if re.search(r"\bpip3? install\b", r)]
    assert len(pip_runs) == 1, f"expected one RUN pip install, found {pip_runs}"
    assert pip_install_args(pip_runs[0]) == readme_install_args()
    assert re.search(r"^COPY \. \.", dockerfile, re.MULTILINE), (
        "the Dockerfile must copy the repository"
    )


def test_ray_cluster_yaml_installs_and_starts_ray() -> None:
    config = _load_all(DEPLOY / "ray-cluster.yaml")[0]
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] and config["provider"]["worker_ips"]
    assert config["max_workers"] == len(config["provider"]["worker_ips"])
    assert "." in config["file_mounts"].values()
    setup = config["setup_commands"]
    assert any(pip_install_args(c) == readme_install_args() for c in setup if "pip" in c)
    head = " ; ".join(config["head_start_ray_commands"])
    worker = " ; ".join(config["worker_start_ray_commands"])
    assert "ray start --head --port=6379" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker


def test_raycluster_manifest() -> None:
    docs = _load_all(DEPLOY / "kuberay" / "raycluster.yaml")
    cluster = _only(docs, "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    assert any(m["mountPath"] == "/data" for m in head["volumeMounts"])
    claim = spec["headGroupSpec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]
    assert _only(docs, "PersistentVolumeClaim")["metadata"]["name"] == claim["claimName"]
    workers = spec["workerGroupSpecs"]
    assert workers and workers[0]["replicas"] >= 1
    for container in [head] + [w["template"]["spec"]["containers"][0] for w in workers]:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "RAY_AUTH_TOKEN" in env and "BRANCHPOINT_CHECKPOINTER" in env


def test_rayjob_targets_the_raycluster() -> None:
    job = _only(_load_all(DEPLOY / "kuberay" / "rayjob.yaml"), "RayJob")
    cluster = _only(_load_all(DEPLOY / "kuberay" / "raycluster.yaml"), "RayCluster")
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["branchpoint", "sweep"]
    assert argv[argv.index("--where") + 1] == "status = 'failed'"


def test_rayjob_entrypoint_is_a_real_cli_command() -> None:
    from branchpoint.cli import app  # imported here so the other checks run without the CLI

    job = _only(_load_all(DEPLOY / "kuberay" / "rayjob.yaml"), "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    for flag in ("--address", "--where", "--db"):
        assert flag in result.output, f"`branchpoint sweep` has no {flag} option"
