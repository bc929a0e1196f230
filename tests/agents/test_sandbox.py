"""The code sandbox: output, limits, isolation, and HumanEval checks on the real data set."""

from __future__ import annotations

import gzip
import json
import socket
import time
from pathlib import Path

import pytest
from shared_data import needs_shared_data

from branchpoint.agents import sandbox
from branchpoint.agents.sandbox import extract_code_blocks, run_humaneval, run_python
from branchpoint.errors import TaskFileError

HUMANEVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "HumanEval.jsonl.gz"


def _humaneval(task_id: str) -> dict[str, str]:
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        for line in f:
            problem = json.loads(line)
            if problem["task_id"] == task_id:
                return problem
    raise KeyError(task_id)


def test_output_is_captured_and_exit_code_decides_ok() -> None:
    good = run_python("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert good.ok and good.tool == "python"
    assert "out" in good.output and "err" in good.output
    bad = run_python("raise ValueError('boom')")
    assert not bad.ok
    assert "ValueError: boom" in bad.output and "[sandbox] exit code 1" in bad.output


def test_infinite_loop_is_killed_at_the_deadline() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout_s=1.0)
    assert time.monotonic() - started < 4.0
    assert not result.ok
    assert "wall-clock timeout" in result.output


def test_sleeping_program_is_killed_at_the_deadline() -> None:
    result = run_python("import time\nprint('before', flush=True)\ntime.sleep(60)", timeout_s=1.0)
    assert not result.ok and result.seconds < 4.0
    assert "before" in result.output


def test_memory_bomb_fails_without_taking_the_machine() -> None:
    result = run_python(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", memory_mb=256
    )
    assert not result.ok
    assert "MemoryError" in result.output


def test_fork_bomb_ends_and_fails() -> None:
    started = time.monotonic()
    result = run_python("import os\nwhile True:\n    os.fork()", timeout_s=5.0)
    assert not result.ok
    assert time.monotonic() - started < 10.0


def test_output_is_capped_keeping_head_and_tail() -> None:
    result = run_python("print('START')\nfor i in range(200000):\n    print(i)\nprint('END')")
    assert result.ok
    assert len(result.output) <= sandbox.OUTPUT_CAP + 200
    assert result.output.startswith("START") and result.output.rstrip().endswith("END")
    assert "bytes of output omitted" in result.output


def _listening_port() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def test_network_is_refused_even_to_a_listening_local_port() -> None:
    server, port = _listening_port()
    with server:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('CONNECTED')"
        result = run_python(code)
    assert not result.ok
    assert "CONNECTED" not in result.output


def test_weak_mode_refuses_network_by_the_prelude_when_namespaces_are_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRANCHPOINT_SANDBOX", "weak")
    monkeypatch.setattr(sandbox, "_namespace_prefix", lambda: ())
    server, port = _listening_port()
    with server:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('CONNECTED')"
        result = run_python(code)
    assert not result.ok
    assert "network access is disabled" in result.output
    assert run_python("import socket\na, b = socket.socketpair()\nprint('pair ok')").ok


def test_a_traceback_reads_the_same_in_every_run() -> None:
    """The fresh folder's random name would reach the agent's next prompt and change its reply."""
    code = "import os\nprint(os.getcwd())\nraise ValueError('boom')\n"
    first, second = run_python(code, timeout_s=5), run_python(code, timeout_s=5)
    assert not first.ok and "ValueError: boom" in first.output
    assert 'File "/sandbox/main.py", line 3' in first.output
    assert "/sandbox/work" in first.output and "branchpoint-sandbox-" not in first.output
    assert first.output == second.output


def test_files_are_in_the_working_folder_and_the_folder_is_fresh() -> None:
    code = "import os\nprint(sorted(os.listdir('.')))\nprint(open('data/notes.txt').read())"
    result = run_python(code, files={"data/notes.txt": "hello file", "a.py": "X = 41"})
    assert result.ok
    assert "['a.py', 'data']" in result.output and "hello file" in result.output
    assert run_python("import a\nprint(a.X + 1)", files={"a.py": "X = 41"}).output.strip() == "42"
    assert run_python("import os\nprint(os.listdir('.'))").output.strip() == "[]"


def test_file_names_escaping_the_workspace_are_rejected() -> None:
    with pytest.raises(TaskFileError, match="relative path"):
        run_python("print(1)", files={"../evil.txt": "x"})
    with pytest.raises(TaskFileError):
        run_python("print(1)", files={"/tmp/evil.txt": "x"})


def test_extract_code_blocks() -> None:
    text = (
        "Here:\n```python\nx = 1\n```\nthen\n```\ny = 2\n```\n"
        "```bash\nls\n```\n```py\nz = 3\n```\nno fence here"
    )
    assert extract_code_blocks(text) == ["x = 1", "y = 2", "z = 3"]
    assert extract_code_blocks("no code") == []
    assert extract_code_blocks("```python\ndef f():\n    return 1```") == ["def f():\n    return 1"]


@needs_shared_data
@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/2"])
def test_humaneval_canonical_solution_passes_and_a_broken_one_fails(task_id: str) -> None:
    problem = _humaneval(task_id)
    canonical = problem["prompt"] + problem["canonical_solution"]
    assert run_humaneval(canonical, problem["test"], problem["entry_point"])
    broken = problem["prompt"] + "    return None\n"
    assert not run_humaneval(broken, problem["test"], problem["entry_point"])
