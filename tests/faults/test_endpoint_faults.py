"""Endpoint faults: the preflight sends the key; 500s, hangs and malformed JSON are retried, then
fail with their cause (status code and message) in one picklable error."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from autogen_core.models import UserMessage
from fake_endpoint import REQUIRED_KEY, faulty_endpoint

from branchpoint.agents.backends import check_endpoint, make_chat_client, parse_model_spec
from branchpoint.errors import ModelCallError, ModelUnavailableError
from branchpoint.settings import Settings


def _ask(base_url: str, settings: Settings) -> str:
    client = make_chat_client(parse_model_spec(f"openai:fake@{base_url}"), settings)
    result = asyncio.run(client.create([UserMessage(content="2+2?", source="user")]))
    return str(result.content)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FAKE_ENDPOINT_KEY", REQUIRED_KEY)
    return Settings(api_key_env="FAKE_ENDPOINT_KEY", llm_timeout_s=0.5, llm_max_retries=2)


def test_preflight_sends_the_api_key(key: Settings) -> None:
    with faulty_endpoint() as endpoint:
        check_endpoint(parse_model_spec(f"openai:fake@{endpoint.base_url}"), settings=key)
        assert endpoint.authorizations == [f"Bearer {REQUIRED_KEY}"]


def test_preflight_without_the_key_names_the_variable(key: Settings) -> None:
    with faulty_endpoint() as endpoint:
        spec = parse_model_spec(f"openai:fake@{endpoint.base_url}")
        with pytest.raises(ModelUnavailableError, match=r"refused the API key .*\$OTHER_KEY"):
            check_endpoint(spec, settings=Settings(api_key_env="OTHER_KEY"))


def test_a_healthy_endpoint_answers(key: Settings) -> None:
    with faulty_endpoint() as endpoint:
        assert _ask(endpoint.base_url, key) == "FINAL ANSWER: 4"
        assert endpoint.chat_calls == 1


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("500", r"HTTP 500: the GPU caught fire \(gave up after 3 attempts\)"),
        ("hang", r"no answer before the timeout .*\(gave up after 3 attempts\)"),
        ("malformed", r"malformed answer: .*\(gave up after 3 attempts\)"),
    ],
)
def test_faults_are_retried_then_fail_with_their_cause(
    key: Settings, mode: str, cause: str
) -> None:
    with faulty_endpoint(mode, hang_s=1.5) as endpoint:
        with pytest.raises(ModelCallError, match=cause) as info:
            _ask(endpoint.base_url, key)
        assert endpoint.chat_calls == 3  # the first try and llm_max_retries=2 retries
    assert endpoint.base_url in str(info.value)
    # It crosses Ray intact (the openai exceptions arrived as "UnserializableException").
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_retries_are_configurable(key: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHPOINT_LLM_RETRIES", "0")
    settings = Settings(api_key_env="FAKE_ENDPOINT_KEY")
    assert settings.llm_max_retries == 0
    with faulty_endpoint("500") as endpoint:
        with pytest.raises(ModelCallError, match="gave up after 1 attempt"):
            _ask(endpoint.base_url, settings)
        assert endpoint.chat_calls == 1


@pytest.mark.ray
def test_a_run_against_a_failing_endpoint_errors_with_the_cause_and_exits_1(
    tmp_path: Path,
) -> None:
    mode, cause = "500", "HTTP 500: the GPU caught fire"  # hangs and malformed JSON: above
    env = {
        **os.environ,
        "FAKE_ENDPOINT_KEY": REQUIRED_KEY,
        "BRANCHPOINT_API_KEY_ENV": "FAKE_ENDPOINT_KEY",
    }
    env |= {"BRANCHPOINT_LLM_TIMEOUT": "1", "BRANCHPOINT_LLM_RETRIES": "1"}
    db = tmp_path / "t.duckdb"
    with faulty_endpoint(mode, hang_s=3.0) as endpoint:
        result = subprocess.run(
            [sys.executable, "-m", "branchpoint", "run", "--team", "math", "--tasks", "builtin"]
            + ["--limit", "2", "--model", f"openai:fake@{endpoint.base_url}", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            check=False,
        )
        assert endpoint.chat_calls >= 4  # each run's first call, retried once
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"errored 2 × ModelCallError: model endpoint {endpoint.base_url}: {cause}" in result.stdout
    )
    assert "all 2 runs errored" in result.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        errors = con.execute("SELECT status, error FROM runs").fetchall()
    assert len(errors) == 2 and all(s == "errored" and cause in e for s, e in errors), errors
