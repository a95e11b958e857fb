"""The tiny random Whisper folder of the ASR golden, its reference outputs, and a short-decoding copy."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

from tests.paths import FIXTURES

ASR = FIXTURES / "asr"
TINY_WHISPER = ASR / "whisper-tiny-random"
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(
    not HAS_TRANSFORMERS, reason="transformers is not installed (pip install transformers)"
)


def reference_outputs() -> dict:
    return json.loads((ASR / "reference_outputs.json").read_text())


def golden_audio() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(ASR / "io.safetensors")


def long40(io: dict[str, torch.Tensor]) -> torch.Tensor:
    """The golden's 40 s signal: 4 x (en1, 1 s silence, en2, 1 s silence) + en1, zero-padded to 640000 samples."""
    silence = torch.zeros(16000)
    wav = torch.cat([io["en1.audio_16k"], silence, io["en2.audio_16k"], silence] * 4 + [io["en1.audio_16k"]])
    return torch.nn.functional.pad(wav, (0, 640000 - wav.shape[-1]))


@pytest.fixture(scope="session")
def short_whisper(tmp_path_factory):
    """The tiny Whisper with max_new_tokens 12 in its generation config.

    The random model never stops by itself (2225 tokens for a 4 s clip); the node, Encode and CLI tests
    need a transcript, not that many tokens. The parity tests use the folder as it is.
    """
    folder = tmp_path_factory.mktemp("asr") / "whisper-tiny-short"
    shutil.copytree(TINY_WHISPER, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config["max_new_tokens"] = 12
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder
