"""vq02 (Paraformer streaming encoder + k-means) against the reference's get_vq02_code on a tiny model (dither 0)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stepaudio_core.errors import ModelFileError
from stepaudio_core.tokenizer.frontend import CHUNK_SAMPLES, FrontendConfig, frame_count
from stepaudio_core.tokenizer.paraformer import STEP, EncoderStream, ParaformerConfig
from stepaudio_core.tokenizer.vq02 import PARAFORMER_DIR, VQ02Tokenizer, read_codebook
from tests.paths import FIXTURES, shared_file
from tests.tolerances import EPS, LOG_POWER

# Low-frame-rate features: the Kaldi log-power fbank (tests/tolerances.py) minus the CMVN mean, times the
# CMVN inverse deviation, which is at most 0.24 in the golden's am.mvn.
LFR_TOL = 0.24 * LOG_POWER
# The tiny encoder's output (values up to 3.3), some 30 roundings deep: 3.3 * EPS * 30 = 1.2e-5, and a
# bound of 1e-4 (250 ulps) that a missing layer, wrong mask or position offset (changes of ~0.1) still fail.
ENCODER_TOL = 1e-4

FOLDER = FIXTURES / "vq02"  # the golden's tiny Step-Audio-Tokenizer folder


@pytest.fixture(scope="module")
def golden():
    return load_file(FOLDER / "io.safetensors")


@pytest.fixture(scope="module")
def wav():
    """The golden's input: en1 through the tokenizer preprocessing (frontend/ en1.tok.3_trimmed)."""
    return load_file(FIXTURES / "frontend" / "io.safetensors")["en1.tok.3_trimmed"][0]


@pytest.fixture(scope="module")
def vq02():
    return VQ02Tokenizer.from_folder(FOLDER)


def chunks(wav):
    n = wav.shape[0] // CHUNK_SAMPLES + 1
    return [(wav[i * CHUNK_SAMPLES : (i + 1) * CHUNK_SAMPLES], i == n - 1) for i in range(n)]


@pytest.mark.parity
def test_streaming_front_end_matches_per_chunk(vq02, golden, wav):
    stream, worst_fbank, worst_lfr = vq02.frontend.stream(), 0.0, 0.0
    for i, (chunk, final) in enumerate(chunks(wav)):
        pending = chunk if stream.samples is None else torch.cat([stream.samples, chunk])
        worst_fbank = max(
            worst_fbank, (vq02.frontend.fbank(pending) - golden[f"chunk{i:02d}.fbank"][0]).abs().max().item()
        )
        worst_lfr = max(worst_lfr, (stream(chunk, final) - golden[f"chunk{i:02d}.lfr_cmvn"][0]).abs().max().item())
    assert i == 15
    # Worst seen: fbank 1.4e-4, LFR 1.9e-5 (MKL AVX2); 1.0e-4 and 1.5e-5 under every ATen capability.
    assert worst_fbank <= LOG_POWER
    assert worst_lfr <= LFR_TOL


@pytest.mark.parity
def test_offline_features_equal_the_stream(vq02, golden, wav):
    streamed = torch.cat([golden[f"chunk{i:02d}.lfr_cmvn"][0] for i in range(16)])
    assert (vq02.features(wav) - streamed).abs().max().item() <= LFR_TOL  # worst seen: 1.9e-5 (MKL AVX2)


def test_frame_count_is_what_the_stream_emits(vq02):
    # Around every boundary of the count rule, in the first chunk and in steady state.
    x = 0.3 * torch.randn(3 * CHUNK_SAMPLES, generator=torch.Generator().manual_seed(0))
    lengths = {
        b + r + d
        for b in (0, CHUNK_SAMPLES, 2 * CHUNK_SAMPLES)
        for r in (80, 400, 560, 880, 1200, 3700)
        for d in (-1, 0, 1)
    }
    for n in sorted(lengths | {0, 1, 399}):
        stream, emitted = vq02.frontend.stream(), 0
        for chunk, final in chunks(x[:n]):
            if final and chunk.shape[0] == 0:
                break
            emitted += stream(chunk, final).shape[0]
        assert frame_count(n) == emitted, n
    assert frame_count(879) == 0 and frame_count(880) == 1 and frame_count(CHUNK_SAMPLES + 500) == 4


@pytest.mark.parity
def test_encoder_input_has_1_based_global_positions(vq02, golden):
    # Window c = the 5 embedded frames before chunk c (zeros before the start) + the chunk's frames.
    feats = torch.cat([golden[f"chunk{i:02d}.lfr_cmvn"][0] for i in range(16)])
    embedded = torch.cat([torch.zeros(5, feats.shape[1]), vq02.encoder.embed(feats, 0)])
    worst = 0.0
    for c in range(16):
        ref = golden[f"chunk{c:02d}.encoder_layer0_input"][0]
        assert int(golden[f"chunk{c:02d}.encoder_start_idx_before"]) == STEP * c
        worst = max(worst, (embedded[STEP * c : STEP * c + ref.shape[0]] - ref).abs().max().item())
    # The embedding scales the features (values up to 16.7) and adds sinusoids: 10 ulps of 16.7.
    # Worst seen: 3.8e-6 (MKL AVX2), 9.5e-7 under every ATen capability. A position off by one moves it by up to ~1.
    assert worst <= 10 * EPS * 16.7


@pytest.mark.parity
def test_chunk_loop_matches_reference_encoder_output(vq02, golden, wav):
    with torch.inference_mode():
        ours = vq02.encode_chunks(wav)
    assert ours.shape == golden["enc_out"][0].shape
    assert (ours - golden["enc_out"][0]).abs().max().item() <= ENCODER_TOL  # worst seen: 8.0e-6 (default)


@pytest.mark.parity
def test_forward_chunk_keeps_the_last_rows_of_each_window(vq02, golden):
    state, worst = EncoderStream(), 0.0
    with torch.inference_mode():
        for c in range(16):
            kept = vq02.encoder.forward_chunk(golden[f"chunk{c:02d}.lfr_cmvn"], state)
            worst = max(worst, (kept - golden[f"chunk{c:02d}.kept"]).abs().max().item())
    assert state.keys[0].shape[2] == 16  # look-back: 4 chunks of 4 frames
    assert worst <= ENCODER_TOL  # worst seen: 1.9e-6 (avx512, 2 threads)


@pytest.mark.parity
def test_codes_are_the_reference_codes(vq02, golden, wav):
    assert torch.equal(vq02(wav, batched=False), golden["codes"])
    assert torch.equal(vq02(wav), golden["codes"])


@pytest.mark.parity
def test_batched_path_equals_chunk_loop_on_the_golden(vq02, wav):
    with torch.inference_mode():
        # The same encoder with another batching, so only summation order differs: ~25 ulps of 3.3 at most.
        # Worst seen: 1.8e-6 (default).
        assert (vq02.encode_batched(wav) - vq02.encode_chunks(wav)).abs().max().item() <= 1e-5


@pytest.mark.parity
@pytest.mark.parametrize("samples", [20 * 16000, 20 * 16000 + 1234, 3000, 900])
def test_batched_path_equals_chunk_loop_on_long_and_short_inputs(vq02, samples):
    g = torch.Generator().manual_seed(samples)
    t = torch.arange(samples) / 16000
    # A gliding tone under noise: every window differs, so a wrong look-back or position shows.
    wav = 0.4 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + 0.05 * torch.randn(samples, generator=g)
    with torch.inference_mode():
        loop, batch = vq02.encode_chunks(wav), vq02.encode_batched(wav)
    assert loop.shape == batch.shape == (frame_count(samples), 32)
    assert (loop - batch).abs().max().item() <= 1e-5  # as above; worst seen: 1.5e-6 (avx2)


def test_too_short_clip_gives_no_codes(vq02):
    assert vq02(torch.zeros(879)).shape == (0,) and vq02(torch.zeros(879), batched=False).shape == (0,)


def test_only_encoder_keys_are_loaded(vq02):
    keys = set(vq02.state_dict())
    saved = torch.load(FOLDER / PARAFORMER_DIR / "model.pt", weights_only=True)
    assert keys == {k for k in saved if k.startswith("encoder.")} and len(keys) < len(saved)


def copy_folder(tmp_path):
    out = tmp_path / "Step-Audio-Tokenizer"
    shutil.copytree(FOLDER, out)
    return out


def test_missing_encoder_key_is_named(tmp_path):
    folder = copy_folder(tmp_path)
    path = folder / PARAFORMER_DIR / "model.pt"
    state = torch.load(path, weights_only=True)
    del state["encoder.encoders.0.norm2.bias"]
    torch.save(state, path)
    with pytest.raises(ModelFileError, match="encoders.0.norm2.bias"):
        VQ02Tokenizer.from_folder(folder)


def test_unsupported_encoder_or_bad_codebook_is_refused(tmp_path):
    folder = copy_folder(tmp_path)
    config = folder / PARAFORMER_DIR / "config.yaml"
    config.write_text(config.read_text().replace("encoder: SANMEncoderChunkOpt", "encoder: SANMEncoder"))
    with pytest.raises(ModelFileError, match="SANMEncoderChunkOpt"):
        VQ02Tokenizer.from_folder(folder)
    np.save(tmp_path / "bad.npy", np.zeros((1024, 16), np.float32))
    with pytest.raises(ModelFileError, match="codebook"):
        read_codebook(tmp_path / "bad.npy", 32)


def test_released_codebook_is_read_and_used_by_nearest_distance():
    codebook = read_codebook(shared_file("real/linguistic_tokenizer.npy"), 512)
    assert codebook.shape == (1024, 512) and codebook.dtype == torch.float32
    hidden = torch.randn(200, 512, generator=torch.Generator().manual_seed(0))
    expected = ((hidden.double()[:, None, :] - codebook.double()[None]) ** 2).sum(-1).argmin(1)
    cmvn = torch.stack([torch.zeros(560), torch.ones(560)])
    tokenizer = VQ02Tokenizer(
        ParaformerConfig(output_size=512, linear_units=8, num_blocks=1), FrontendConfig(), cmvn, codebook
    )
    assert torch.equal(tokenizer.quantize(hidden), expected)
