"""The conversion cache: served only while the source is unchanged, never stale, safetensors only,
with a fallback for read-only model folders; and its use by the CAM++ and vq06 ONNX readers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from stepaudio_core.decoder.campplus import CAMPPlus, CAMPPlusDims
from stepaudio_core.decoder.campplus_onnx import CONVERTER as CAMPPLUS_CONVERTER
from stepaudio_core.decoder.campplus_onnx import load_campplus
from stepaudio_core.testing.decoder import write_campplus_onnx
from stepaudio_core.testing.random_weights import randomize_
from stepaudio_core.testing.tokenizer import tiny_s3_state, write_s3_onnx
from stepaudio_core.tokenizer.vq06 import CONVERTER as S3_CONVERTER
from stepaudio_core.tokenizer.vq06 import VQ06Tokenizer
from stepaudio_core.weights import convert_cache
from stepaudio_core.weights.convert_cache import CACHE_ENV, cache_paths, cached_conversion

TINY_CAMPPLUS = CAMPPlusDims(growth_rate=8, bn_size=2, init_channels=16, m_channels=4, block_layers=(2, 2, 2))


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """Every test gets its own fallback cache folder, never the real user's."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


class Converter:
    """A conversion that counts its calls and returns the source's bytes as a tensor."""

    def __init__(self, source: Path):
        self.source, self.calls = source, 0

    def __call__(self):
        self.calls += 1
        data = torch.frombuffer(bytearray(self.source.read_bytes()), dtype=torch.uint8).clone()
        return {"data": data, "twice": data.float() * 2}, {"note": "hello"}


def _source(folder: Path, content: bytes = b"0123456789abcdef") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(content)
    return path


def _expect(state, meta, content: bytes):
    assert bytes(state["data"].tolist()) == content
    assert torch.equal(state["twice"], torch.tensor(list(content), dtype=torch.float32) * 2)
    assert meta == {"note": "hello"}


def test_second_load_is_served_from_a_safetensors_file_beside_the_source(tmp_path, user_cache):
    src = _source(tmp_path / "models")
    conv = Converter(src)
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    cache = src.parent / "model.onnx.demo-v1.safetensors"
    assert cache.is_file() and not user_cache.exists()
    with safe_open(str(cache), framework="pt") as f:  # a plain safetensors file: no pickle anywhere
        meta = f.metadata()
    assert meta["source_size"] == str(src.stat().st_size) and meta["converter"] == "demo-v1"
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert conv.calls == 1
    assert [p.name for p in src.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_changed_source_is_converted_again_never_served_stale(tmp_path):
    src = _source(tmp_path)
    conv = Converter(src)
    cached_conversion(src, "demo-v1", conv)
    st = src.stat()
    # same size, different bytes, mtime moved by one second: a replaced model file
    src.write_bytes(b"fedcba9876543210")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _expect(*cached_conversion(src, "demo-v1", conv), b"fedcba9876543210")
    assert conv.calls == 2
    # different size, mtime put back exactly: the size alone tells
    src.write_bytes(b"short")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    _expect(*cached_conversion(src, "demo-v1", conv), b"short")
    assert conv.calls == 3
    # a new converter version ignores caches of the old one
    cached_conversion(src, "demo-v2", conv)
    assert conv.calls == 4


def test_a_source_that_changes_during_conversion_is_not_cached(tmp_path):
    src = _source(tmp_path)

    def convert():
        state = Converter(src)()
        src.write_bytes(b"changed meanwhile")
        return state

    cached_conversion(src, "demo-v1", convert)
    assert not any(p.exists() for p in cache_paths(src, "demo-v1"))


def test_read_only_model_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, user_cache):
    src = _source(tmp_path / "models")
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        # the tests run as root, where chmod does not stop writes: refuse the model folders here instead
        if Path(dir) != user_cache:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(convert_cache.tempfile, "mkstemp", mkstemp)
    conv = Converter(src)
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert sorted(p.name for p in src.parent.iterdir()) == ["model.onnx"]
    cached = list(user_cache.iterdir())
    assert len(cached) == 1 and cached[0].name.endswith("-model.onnx.demo-v1.safetensors")
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert conv.calls == 1
    # a second model folder with a file of the same name gets its own entry
    other = _source(tmp_path / "other", b"another model")
    _expect(*cached_conversion(other, "demo-v1", Converter(other)), b"another model")
    assert len(list(user_cache.iterdir())) == 2


def test_nowhere_to_write_still_converts_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    src = _source(tmp_path)

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(convert_cache.tempfile, "mkstemp", refuse)
    conv = Converter(src)
    for _ in range(2):
        _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert conv.calls == 2
    assert cache_paths(src, "demo-v1") == [src.parent / "model.onnx.demo-v1.safetensors"]


def test_a_corrupt_cache_file_is_replaced(tmp_path):
    src = _source(tmp_path)
    conv = Converter(src)
    cached_conversion(src, "demo-v1", conv)
    cache = cache_paths(src, "demo-v1")[0]
    cache.write_bytes(cache.read_bytes()[:40])
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert conv.calls == 2
    _expect(*cached_conversion(src, "demo-v1", conv), src.read_bytes())
    assert conv.calls == 2


def test_reserved_metadata_keys_are_refused(tmp_path):
    src = _source(tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        cached_conversion(src, "demo-v1", lambda: ({"x": torch.zeros(1)}, {"converter": "mine"}))


def _tiny_campplus(seed: int) -> CAMPPlus:
    return randomize_(CAMPPlus(TINY_CAMPPLUS), torch.Generator().manual_seed(seed)).eval()


def test_campplus_loads_from_its_cache_with_the_same_weights_and_sizes(tmp_path):
    path = tmp_path / "campplus.onnx"
    write_campplus_onnx(_tiny_campplus(0), path)
    first = load_campplus(path)
    cache = path.parent / f"campplus.onnx.{CAMPPLUS_CONVERTER}.safetensors"
    assert cache.is_file()
    second = load_campplus(path)
    assert second.dims == first.dims == TINY_CAMPPLUS
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    # replace the model: the cache is not used for the new file
    st = path.stat()
    write_campplus_onnx(_tiny_campplus(1), path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = load_campplus(path)
    expected = _tiny_campplus(1).state_dict()
    assert all(torch.equal(v, third.state_dict()[k]) for k, v in expected.items())


def test_vq06_loads_from_its_cache_with_the_same_weights_and_sizes(tmp_path):
    path = tmp_path / "speech_tokenizer_v1.onnx"
    write_s3_onnx(tiny_s3_state(torch.Generator().manual_seed(0), n_state=64, n_layer=1, n_codes=64), path)
    first = VQ06Tokenizer.from_onnx(path)
    assert (path.parent / f"speech_tokenizer_v1.onnx.{S3_CONVERTER}.safetensors").is_file()
    second = VQ06Tokenizer.from_onnx(path)
    assert second.model.dims == first.model.dims and first.model.dims.n_state == 64
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    wav = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first(wav), second(wav))
