"""Every ```python and ```bash block of README.md, executed as written, in README order.

Blocks run from the repository root (so `../shared/data` paths work) with `BRANCHPOINT_DB`
pointing at one temporary database shared by all blocks (a later block sees the runs of an
earlier one), this interpreter's `bin` first on PATH, and a fresh process per block (bash with
`-euo pipefail`; python as a script). A block's tier is set by a comment on the line just above
its fence:

    <!-- test: ray -->                  starts Ray (any `branchpoint run/fork/debug/sweep`)
    <!-- test: local_model slow -->     several markers
    <!-- test: skip needs a Kubernetes cluster -->   not runnable here; the reason is shown

A block with no comment is in the fast tier (in-process, no servers). A block that reads what an
earlier block wrote must carry at least that block's markers, so that a tier run alone
(`pytest -m fast`) never depends on a block it deselected.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from interventions.test_sweep_cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIERS = {"ray", "cluster", "local_model", "postgres", "phoenix", "browser", "slow"}
BLOCK_TIMEOUT_S = 850
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_WRITTEN = re.compile(r"\.(duckdb|sqlite)(\.wal|-wal|-shm)?$")
_MARK = re.compile(r"^\s*<!--\s*test:\s*(?P<spec>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: where it is, its language, code and test markers."""

    line: int
    section: str
    lang: str
    code: str
    markers: tuple[str, ...] = ()
    skip: str | None = None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"L{self.line}-{self.lang}-{slug}"


def parse_marker(spec: str, where: str) -> tuple[tuple[str, ...], str | None]:
    """The markers (or skip reason) of a `<!-- test: … -->` comment."""
    if spec.startswith("skip"):
        reason = spec.removeprefix("skip").strip()
        if not reason:
            raise ValueError(f"{where}: `test: skip` needs a reason")
        return (), reason
    markers = tuple(spec.split())
    unknown = set(markers) - TIERS
    if unknown or not markers:
        raise ValueError(f"{where}: unknown test tier(s) {sorted(unknown)}; use {sorted(TIERS)}")
    return markers, None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block in order, with the section heading above it and its markers."""
    lines = text.splitlines()
    blocks, section, i = [], "top", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        fence = _FENCE.match(line)
        if fence is None:
            i += 1
            continue
        indent, body, j = len(fence["indent"]), [], i + 1
        while j < len(lines) and not _FENCE.match(lines[j]):
            body.append(lines[j][indent:])
            j += 1
        previous = lines[i - 1] if i > 0 else ""
        mark = _MARK.match(previous)
        markers, skip = parse_marker(mark["spec"], f"README.md:{i}") if mark else ((), None)
        code = "\n".join(body) + "\n"
        blocks.append(Block(i + 1, section, fence["lang"], code, markers, skip))
        i = j + 1
    return blocks


RUNNABLE = [b for b in readme_blocks(README.read_text()) if b.lang in ("python", "bash")]


def _param(block: Block) -> object:
    marks = [getattr(pytest.mark, m) for m in block.markers]
    if block.skip:
        marks.append(pytest.mark.skip(reason=f"README.md:{block.line}: {block.skip}"))
    return pytest.param(block, id=block.id, marks=marks)


@pytest.fixture(scope="module")
def readme_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment every block runs in: one trace database for the whole README. Trace
    databases a block writes into the repository root (`--db runs.duckdb`) are removed after."""
    home = tmp_path_factory.mktemp("readme")
    env = dict(os.environ)
    env["BRANCHPOINT_DB"] = str(home / "branchpoint.duckdb")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    before = set(ROOT.iterdir())
    yield env
    for path in set(ROOT.iterdir()) - before:
        if path.is_file() and _WRITTEN.search(path.name):
            path.unlink()


def run_block(block: Block, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Execute one block as written, from the repository root."""
    if block.lang == "bash":
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    return subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def block_env(block: Block, readme_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The README environment; for a `cluster` block also a real two-node Ray cluster on this
    machine, reached as the README says: `HEAD_ADDRESS`, `RAY_AUTH_MODE`, `RAY_AUTH_TOKEN`."""
    if "cluster" not in block.markers:
        yield readme_env
        return
    cluster = Cluster()
    try:
        cluster.start_head()
        cluster.add_worker()
        token = cluster.env["RAY_AUTH_TOKEN"]
        yield {**readme_env, "HEAD_ADDRESS": cluster.address, "RAY_AUTH_TOKEN": token}
    finally:
        cluster.stop()


@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_readme_block_runs_as_written(block: Block, block_env: dict[str, str]) -> None:
    done = run_block(block, block_env)
    assert done.returncode == 0, (
        f"README.md:{block.line} ({block.section}) exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def test_markers_and_fences_are_read_as_documented() -> None:
    text = (
        "## A\n```bash\necho a\n```\n<!-- test: ray slow -->\n```python\nprint(1)\n```\n"
        "## B\n<!-- test: skip needs a cluster -->\n  ```bash\n  kubectl apply\n  ```\n"
        "```text\nnot run\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.section, b.lang, b.markers, b.skip) for b in blocks] == [
        ("A", "bash", (), None),
        ("A", "python", ("ray", "slow"), None),
        ("B", "bash", (), "needs a cluster"),
        ("B", "text", (), None),
    ]
    assert blocks[2].code == "kubectl apply\n"
    with pytest.raises(ValueError, match="unknown test tier"):
        readme_blocks("<!-- test: gpu -->\n```bash\nx\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        readme_blocks("<!-- test: skip -->\n```bash\nx\n```\n")


def test_every_intervention_the_readme_shows_is_one_the_cli_accepts() -> None:
    """Each line of the README's ```json blocks is an intervention file's content, as `fork
    --intervention` reads it."""
    from branchpoint.orchestrator.fork import parse_intervention

    lines = [
        line
        for block in readme_blocks(README.read_text())
        if block.lang == "json"
        for line in block.code.splitlines()
        if line.strip()
    ]
    kinds = {parse_intervention(line).kind for line in lines}
    assert kinds == {
        "replace_message",
        "replace_plan",
        "instruct",
        "resample",
        "swap_model",
        "runtime_trace",
    }
