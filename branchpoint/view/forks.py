"""Forks launched from the viewer: the form's fields checked, then `branchpoint fork` started.

The viewer never writes the trace database itself. A fork from the page runs the very command a
user would type (`python -m branchpoint fork RUN --step K --intervention FILE --repeats R --db
DB`) in a child process, so it takes the same code path, and the viewer keeps serving reads.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from branchpoint.errors import BranchpointError
from branchpoint.model import INTERVENTION_ADAPTER, Intervention

KINDS = ("replace_message", "instruct", "resample")
MAX_REPEATS = 10
TEXT_FIELD = {"replace_message": "content", "instruct": "instruction"}


def intervention_from_form(form: dict[str, str], n_steps: int) -> tuple[Intervention, int]:
    """The intervention and repeat count a submitted fork form asks for, validated."""
    kind = form.get("kind", "")
    if kind not in KINDS:
        raise BranchpointError(f"unknown intervention kind {kind!r}; choose one of {KINDS}")
    try:
        step = int(form.get("step", ""))
        repeats = int(form.get("repeats", "1") or 1)
    except ValueError:
        raise BranchpointError("step and repeats must be whole numbers") from None
    if not 0 <= step < n_steps:
        raise BranchpointError(f"step {step} is out of range: the run has steps 0..{n_steps - 1}")
    if not 1 <= repeats <= MAX_REPEATS:
        raise BranchpointError(f"repeats must be between 1 and {MAX_REPEATS}")
    data: dict[str, object] = {"kind": kind, "step": step}
    if kind in TEXT_FIELD:
        text = form.get("text", "").replace("\r\n", "\n")
        if not text.strip():
            raise BranchpointError(f"{kind} needs a text: the new message or the instruction")
        data[TEXT_FIELD[kind]] = text
    try:
        return INTERVENTION_ADAPTER.validate_python(data), repeats
    except ValidationError as exc:
        raise BranchpointError(f"invalid intervention: {exc.errors()[0]['msg']}") from None


@dataclass
class ForkJob:
    """One `branchpoint fork` child process started from the page."""

    job_id: str
    run_id: str
    step: int
    intervention_id: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    runs_before: frozenset[str]  # forks of this edit that existed at launch
    new_runs: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(["branchpoint", *self.argv[3:]])

    @property
    def state(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        return "succeeded" if code == 0 else f"failed (exit code {code})"

    @property
    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20_000:]
        except OSError:
            return ""


class ForkLauncher:
    """Starts fork commands on one database and remembers them for their status pages."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.jobs: dict[str, ForkJob] = {}
        self._lock = threading.Lock()
        self._workdir = Path(tempfile.mkdtemp(prefix="branchpoint-view-forks-"))

    def launch(
        self, run_id: str, intervention: Intervention, repeats: int, runs_before: frozenset[str]
    ) -> ForkJob:
        """Start `branchpoint fork` for the intervention; returns at once. `runs_before` are
        the forks of this run with this intervention already stored (the job's are the rest)."""
        job_id = uuid.uuid4().hex[:12]
        spec = self._workdir / f"{job_id}.json"
        spec.write_text(json.dumps(intervention.model_dump(mode="json")))
        log_path = self._workdir / f"{job_id}.log"
        argv = [
            sys.executable, "-m", "branchpoint", "fork", run_id,
            "--step", str(intervention.step), "--intervention", str(spec),
            "--repeats", str(repeats), "--db", str(self.db_path),
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        job = ForkJob(
            job_id, run_id, intervention.step, intervention.intervention_id, argv, log_path,
            process, runs_before,
        )  # fmt: skip
        with self._lock:
            self.jobs[job_id] = job
        return job

    def close(self) -> None:
        """Remove the files of finished forks; a fork still running keeps going on its own."""
        if all(job.process.poll() is not None for job in self.jobs.values()):
            shutil.rmtree(self._workdir, ignore_errors=True)
