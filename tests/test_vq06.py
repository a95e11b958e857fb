"""vq06 through s3tokenizer on a tiny S3 tokenizer v1 (25 Hz) ONNX file, and the whole tokenizer from a tiny folder."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from stepaudio_core.audio import prompt_audio, tokenizer_preprocess
from stepaudio_core.errors import ModelFileError
from stepaudio_core.features import whisper_log_mel
from stepaudio_core.tokenizer import AudioCodes, AudioTokenizer
from stepaudio_core.tokenizer.frontend import frame_count
from stepaudio_core.tokenizer.testing import write_tiny_tokenizer
from stepaudio_core.tokenizer.vq06 import VQ06_FILE, VQ06Tokenizer, import_s3tokenizer
from tests.paths import FIXTURES


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "Step-Audio-Tokenizer", seed=0)


@pytest.fixture(scope="module")
def vq06(folder):
    return VQ06Tokenizer.from_onnx(folder / VQ06_FILE)


@pytest.fixture(scope="module")
def wav():
    return load_file(FIXTURES / "frontend" / "io.safetensors")["en1.tok.3_trimmed"][0]


def test_25_tokens_per_second(vq06, wav):
    codes = vq06(wav)
    seconds = wav.shape[0] / 16000
    assert abs(len(codes) - round(seconds, 2) * 25) <= 2  # the reference's own check
    assert len(codes) == -(-(wav.shape[0] // 160) // 4) == 94
    assert vq06.model.encoder.conv1.stride == (2,)  # built as speech_tokenizer_v1_25hz
    assert codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 4096
    assert len(set(codes.tolist())) > 1


def test_tiny_onnx_graph_and_s3tokenizer_agree(folder, vq06, wav):
    # The ONNX file is a runnable graph; onnx's reference evaluator must give s3tokenizer's tokens.
    from onnx.reference import ReferenceEvaluator

    mel = whisper_log_mel(wav, n_mels=128)
    run = ReferenceEvaluator(str(folder / VQ06_FILE)).run(
        None, {"feats": mel[None].numpy(), "feats_length": np.array([mel.shape[1]], np.int32)}
    )
    assert torch.equal(torch.from_numpy(run[0][0]), vq06(wav))


def test_long_audio_in_30_s_pieces(vq06):
    g = torch.Generator().manual_seed(3)
    long = 0.1 * torch.randn(30 * 16000 + 8000, generator=g)
    codes = vq06(long)
    assert len(codes) == 750 + 13  # a full 30 s piece, then 0.5 s -> ceil(50 / 4)
    assert torch.equal(codes[:750], vq06(long[: 30 * 16000]))  # pieces do not overlap or see each other
    assert len(vq06(long[: 30 * 16000 + 479])) == 750  # a last piece under 480 samples is dropped


def test_s3tokenizer_is_imported_without_torchaudio():
    import_s3tokenizer()
    assert "s3tokenizer" in sys.modules
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        assert "torchaudio" not in sys.modules


def test_missing_or_corrupt_onnx_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        VQ06Tokenizer.from_onnx(tmp_path / VQ06_FILE)
    (tmp_path / VQ06_FILE).write_bytes(b"\x08\x07" + bytes(range(256)) * 8)
    with pytest.raises(ModelFileError, match="speech_tokenizer_v1.onnx"):
        VQ06Tokenizer.from_onnx(tmp_path / VQ06_FILE)


def test_audio_tokenizer_encodes_any_rate_end_to_end(folder):
    tokenizer = AudioTokenizer.from_folder(folder)
    pcm, sr = sf.read(FIXTURES / "audio" / "en1_24k.wav", dtype="int16")
    wav = prompt_audio(torch.from_numpy(pcm.astype(np.float32) / 32768.0))
    codes = tokenizer.encode(wav, sr)
    wav_16k = tokenizer.preprocess(wav, sr)
    assert torch.equal(wav_16k, tokenizer_preprocess(wav, sr)) and wav_16k.shape == (60000,)
    assert isinstance(codes, AudioCodes)
    assert len(codes.vq02) == frame_count(60000) == 63 and len(codes.vq06) == 94 and codes.groups == 31
    assert codes == tokenizer.encode(wav, sr) == tokenizer.encode_16k(wav_16k, batched=False)
    # Below 16 kHz the clip is upsampled (the reference refuses): 8 kHz gives codes as well.
    low = tokenizer.encode(wav[::3].contiguous(), 8000)
    assert low.groups > 0


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        AudioTokenizer.from_folder(tmp_path / "nowhere")
