"""Prompt preprocessing against the reference goldens (tts.preprocess_prompt_wav + tokenizer.preprocess_wav)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from stepaudio_core.audio import (
    cap_peak,
    energy_normalize,
    nonsilent_span,
    prompt_audio,
    resample,
    to_mono,
    tokenizer_preprocess,
    trim_silence,
)
from stepaudio_core.errors import InputError
from tests.paths import FIXTURES
from tests.tolerances import EPS

# librosa.effects.trim indices and lengths recorded with the goldens (goldens/frontend/io_manifest.json).
TRIM = {"en1": ((768, 56320), 60000), "en2": ((1408, 34688), 37680)}


@pytest.fixture(scope="module")
def golden():
    return load_file(FIXTURES / "frontend" / "io.safetensors")


def read_prompt(name: str) -> tuple[torch.Tensor, int]:
    """audio/<name>_24k.wav as torchaudio.load gives it (int16 / 32768), then mono + 0.6 peak cap."""
    pcm, sr = sf.read(FIXTURES / "audio" / f"{name}_24k.wav", dtype="int16")
    return prompt_audio(torch.from_numpy(pcm.astype(np.float32) / 32768.0)), sr


@pytest.mark.parity
def test_resample_matches_torchaudio_transforms_resample(golden):
    wav, sr = read_prompt("en1")
    ours = resample(wav, sr, 16000)
    ref = golden["en1.tok.1_resampled_16k"][0]
    assert ours.shape == ref.shape
    # Samples up to 0.6 through a windowed-sinc kernel of ~100 taps: 0.6 * 1.19e-7 * 100 = 7e-6 if every
    # product rounded the same way. Worst seen: 0 (the same operation order as torchaudio).
    assert (ours - ref).abs().max().item() <= 1e-5


@pytest.mark.parity
def test_resample_float32_kernel_matches_torchaudio_functional_resample():
    wav, sr = read_prompt("en1")
    ref = load_file(FIXTURES / "campplus" / "io.safetensors")["en1.audio_16k"][0]
    ours = resample(wav, sr, 16000, kernel_dtype=torch.float32)
    assert (ours - ref).abs().max().item() <= 1e-5  # as above; worst seen: 0


@pytest.mark.parametrize("name", ["en1", "en2"])
def test_trim_boundaries_and_length_are_exact(name):
    wav, sr = read_prompt(name)
    normed = energy_normalize(resample(wav, sr, 16000))
    assert nonsilent_span(normed) == TRIM[name][0]
    assert trim_silence(normed).shape == (TRIM[name][1],)


@pytest.mark.parity
def test_preprocess_chain_matches_reference(golden):
    wav, sr = read_prompt("en1")
    ours = tokenizer_preprocess(wav, sr)
    ref = golden["en1.tok.3_trimmed"][0]
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    # Resampling as above, then a gain (<= 100) and a cut: ~1e-5 of the normalised peak 0.999. Worst seen: 0.
    assert (ours - ref).abs().max().item() <= 1e-5
    # The onset lands 50 ms in; the reference left-pads en1 with 32 zeros to get there.
    assert torch.equal(ours[:32], torch.zeros(32))


@pytest.mark.parity
@pytest.mark.parametrize(
    "sr, freq", [(8000, 1000.0), (11025, 2000.0), (22050, 5000.0), (44100, 440.0), (48000, 3000.0)]
)
def test_resample_any_rate_keeps_an_in_band_tone(sr, freq):
    # Rates below 16 kHz are upsampled (the reference refuses them); every rate keeps a tone intact.
    t = torch.arange(sr, dtype=torch.float64) / sr
    ours = resample((0.5 * torch.sin(2 * math.pi * freq * t)).float(), sr, 16000)
    assert ours.shape == (16000,)  # ceil(16000 * N / sr)
    exact = 0.5 * torch.sin(2 * math.pi * freq * torch.arange(16000, dtype=torch.float64) / 16000)
    # The windowed-sinc filter's own passband error (not rounding, which is 1e-7 here). Worst seen: 2.6e-3
    # (every capability and thread count).
    assert (ours.double() - exact)[800:-800].abs().max().item() < 5e-3


@pytest.mark.parity
def test_resample_output_length_and_batch_shape():
    x = torch.randn(2, 3, 1001, generator=torch.Generator().manual_seed(0))
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 3, math.ceil(16000 * 1001 / 44100))
    # Batching only reorders the kernel's sums: 8 ulps of the largest sample (|x| up to ~4, so ~3.8e-6).
    # Worst seen: 6.0e-7 (MKL AVX2), 1.2e-7 under every ATen capability.
    assert (y[1, 2] - resample(x[1, 2], 44100, 16000)).abs().max().item() <= 8 * EPS * x.abs().max().item()
    assert resample(x, 16000, 16000) is x


def test_energy_norm_and_peak_cap():
    loud = torch.tensor([0.0, 0.3, -0.8])
    assert energy_normalize(loud).abs().max().item() == pytest.approx(0.999)
    quiet = torch.tensor([0.0, 0.001, -0.002])
    assert torch.allclose(energy_normalize(quiet), quiet * 99.9)  # gain never above 0.999 / 0.01
    assert cap_peak(loud).abs().max().item() == pytest.approx(0.6)
    assert cap_peak(quiet) is quiet


def test_mono_mix_is_the_channel_mean():
    stereo = torch.tensor([[0.2, 0.4], [0.0, -0.4]])
    assert torch.equal(to_mono(stereo), torch.tensor([0.1, 0.0]))
    assert torch.equal(to_mono(stereo[0]), stereo[0])


def test_trim_of_silence_keeps_everything_with_margins():
    # All frames of an all-zero clip count as non-silent (the 1e-10 floor), as in librosa.
    out = trim_silence(torch.zeros(1000))
    assert out.shape == (240 * (math.ceil(1000 / 240) + 18),) and not out.any()


def test_trim_places_the_onset_at_50_ms_and_rounds_to_240_samples():
    g = torch.Generator().manual_seed(1)
    wav = torch.cat([torch.zeros(8000), 0.5 * torch.randn(5000, generator=g), torch.zeros(8000)])
    start, end = nonsilent_span(wav)
    assert start % 128 == 0 and end % 128 == 0 and start <= 8000 < 13000 <= end
    out = trim_silence(wav)
    assert torch.equal(out[:800], wav[start - 800 : start])
    assert out.shape == (240 * math.ceil((end - start) / 240) + 4320,)


@pytest.mark.parametrize(
    "bad, match",
    [(torch.zeros(0), "empty"), (torch.tensor([0.0, float("nan")]), "NaN"), (torch.zeros(1, 2, 3), "shape")],
)
def test_bad_audio_is_refused(bad, match):
    with pytest.raises(InputError, match=match):
        tokenizer_preprocess(to_mono(bad) if bad.dim() == 3 else bad, 16000)


def test_bad_rate_is_refused():
    with pytest.raises(InputError, match="sample rates"):
        resample(torch.zeros(100), 0, 16000)
