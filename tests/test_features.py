"""Spectral features against the reference goldens, and the Kaldi options against Kaldi's own definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from stepaudio_core.audio import resample
from stepaudio_core.errors import InputError
from stepaudio_core.features import MelConfig, kaldi_fbank, matcha_mel, mel_filterbank, whisper_log_mel
from tests.paths import FIXTURES, shared_file
from tests.tolerances import LOG_MAGNITUDE, LOG_POWER, WHISPER_LOG_MEL

FRONTEND = FIXTURES / "frontend"


@pytest.fixture(scope="module")
def frontend():
    return load_file(FRONTEND / "io.safetensors")


@pytest.fixture(scope="module")
def campplus_io():
    return load_file(FIXTURES / "campplus" / "io.safetensors")


def prompt_wav(name: str) -> torch.Tensor:
    """audio/<name>_24k.wav as torchaudio.load reads it, capped at 0.6 peak as tts.preprocess_prompt_wav does."""
    pcm, sr = sf.read(FIXTURES / "audio" / f"{name}_24k.wav", dtype="int16")
    assert sr == 24000
    wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    peak = wav.abs().max()
    return wav / peak * 0.6 if peak > 0.6 else wav


@pytest.mark.parity
@pytest.mark.parametrize(
    "file, args",
    [("matcha_mel_basis_80x961.npy", (24000, 1920, 80, 0, 8000)), ("whisper_mel_filters_128x201.npy", (16000, 400, 128, 0, 8000))],
)
def test_mel_filterbank_equals_librosa_and_whisper_matrices(file, args):
    ref = torch.from_numpy(np.load(FRONTEND / file))
    ours = mel_filterbank(*args)
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    # Built in float64 and rounded once to float32: at most half an ulp (6e-8) relative. Worst seen: 0.
    assert ((ours - ref).abs().max() / ref.abs().max()).item() <= 1e-6


@pytest.mark.parity
def test_mel_filterbank_htk_peaks_and_norms():
    plain = mel_filterbank(16000, 512, 10, 0, 8000, htk=True, norm=None)
    # Unnormalised triangles peak at (nearly) 1 on the bins nearest their HTK-mel centres.
    mels = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 12)
    centres = 700 * (10 ** (mels[1:-1] / 2595) - 1)
    assert np.allclose(plain.argmax(1).numpy(), np.round(centres / (16000 / 512)), atol=1)
    assert plain.max() <= 1.0 and plain.max(1).values.min() > 0.5
    slaney = mel_filterbank(16000, 512, 10, 0, 8000, htk=True)
    enorm = torch.from_numpy(2.0 / (centres[1:].tolist() + [8000.0] - np.r_[0.0, centres[:-1]]))
    # One float32 product per element on each side: within a few ulps (rtol 1e-6 = 8 eps). Passes everywhere.
    assert torch.allclose(slaney, plain * enorm[:, None].float(), rtol=1e-6)


@pytest.mark.parity
@pytest.mark.parametrize("name", ["en1", "en2"])
def test_matcha_mel_matches_prompt_speech_feat(frontend, name):
    ref = frontend[f"{name}.speech_feat"]
    ours = matcha_mel(prompt_wav(name)[None], MelConfig())
    assert ours.shape == ref.shape
    # Log-magnitude mel, values -11.5..1.4: tests/tolerances.py. Worst seen: 1.2e-4 (en2, every capability,
    # 1 and 2 threads; the FFT is MKL's, whose kernels do not follow ATEN_CPU_CAPABILITY).
    assert (ours - ref).abs().max().item() <= LOG_MAGNITUDE


@pytest.mark.parity
def test_matcha_mel_batch_rows_equal_single_calls():
    a, b = prompt_wav("en1"), prompt_wav("en2")
    n = min(a.shape[0], b.shape[0])
    batch = matcha_mel(torch.stack([a[:n], b[:n]]), MelConfig())
    # The same FFTs, batched: a few ulps of the largest value (11.5, ulp 9.5e-7). Worst seen: 9.5e-7 (2 threads).
    assert (batch[1:] - matcha_mel(b[None, :n], MelConfig())).abs().max().item() <= 4e-6


@pytest.mark.parity
@pytest.mark.parametrize("name", ["en1", "en2"])
def test_kaldi_fbank_matches_campplus_reference(campplus_io, name):
    if name == "en1":
        wav = campplus_io["en1.audio_16k"]
    else:
        # en2's 16 kHz waveform is not stored: resample it as the CAM++ path does (functional.resample).
        wav = resample(prompt_wav(name)[None], 24000, 16000, kernel_dtype=torch.float32)
    ref = campplus_io[f"{name}.fbank"]
    ours = kaldi_fbank(wav, num_mel_bins=80, dither=0.0, sample_frequency=16000)
    assert ours.shape == ref.shape
    # Log-power fbank, values -15.9..4.3: tests/tolerances.py. Worst seen: 4.4e-4 (en2, every capability and
    # thread count), in the quietest bands, where the FFT's rounding is largest relative to the band.
    assert (ours - ref).abs().max().item() <= LOG_POWER


@pytest.mark.parity
def test_kaldi_fbank_hamming_scaled_matches_paraformer_frontend(frontend):
    """The vq02 front end: waveform * 32768, hamming, energy_floor 0; its per-chunk frames tile the offline ones."""
    vq02 = load_file(shared_file("goldens/vq02/io.safetensors"))
    ref = torch.cat([vq02[f"chunk{i:02d}.fbank"][0] for i in range(16)])
    wav = frontend["en1.tok.3_trimmed"][0] * 32768
    ours = kaldi_fbank(wav, num_mel_bins=80, window_type="hamming", energy_floor=0.0)
    assert ours.shape == ref.shape
    # Log-power fbank of a waveform scaled by 32768 (values -7..25): tests/tolerances.py. Worst seen: 1.4e-4 (MKL AVX2).
    assert (ours - ref).abs().max().item() <= LOG_POWER


def kaldi_reference(wav, *, bins, window, snip_edges, low=20.0, high=0.0, use_power=True, use_log=True,
                    use_energy=False, energy_floor=1.0, preemph=0.97, remove_dc=True, sr=16000.0):
    """Kaldi's FeatureWindow/MelBanks written sample by sample in float64 (compute-fbank-feats semantics)."""
    x = np.asarray(wav, dtype=np.float64)
    n, size, shift, fft = len(x), int(sr * 0.025), int(sr * 0.010), 512
    if snip_edges:
        count, starts = (1 + (n - size) // shift if n >= size else 0), [i * shift for i in range(n)]
    else:
        count, starts = (n + shift // 2) // shift, [i * shift + shift // 2 - size // 2 for i in range(n)]
    a = 2 * math.pi / (size - 1)
    shape = {
        "hanning": lambda k: 0.5 - 0.5 * math.cos(a * k),
        "hamming": lambda k: 0.54 - 0.46 * math.cos(a * k),
        "povey": lambda k: (0.5 - 0.5 * math.cos(a * k)) ** 0.85,
        "rectangular": lambda k: 1.0,
    }[window]
    high = high if high > 0 else sr / 2 + high

    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo_mel, delta = mel(low), (mel(high) - mel(low)) / (bins + 1)
    banks = np.zeros((bins, fft // 2 + 1))
    for b in range(bins):
        left, centre, right = lo_mel + b * delta, lo_mel + (b + 1) * delta, lo_mel + (b + 2) * delta
        for i in range(fft // 2):
            m = mel(i * sr / fft)
            if left < m < right:
                banks[b, i] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    rows = []
    for f in range(count):
        frame = np.empty(size)
        for k in range(size):
            s = starts[f] + k
            while s < 0 or s >= n:  # Kaldi mirrors out-of-range samples, repeating the edge sample
                s = -s - 1 if s < 0 else 2 * n - 1 - s
            frame[k] = x[s]
        if remove_dc:
            frame -= frame.mean()
        energy = max(math.log(max((frame**2).sum(), np.finfo(np.float32).eps)), math.log(energy_floor) if energy_floor else -np.inf)
        for k in range(size - 1, 0, -1):
            frame[k] -= preemph * frame[k - 1]
        frame[0] -= preemph * frame[0]
        frame *= [shape(k) for k in range(size)]
        spec = np.abs(np.fft.rfft(frame, fft))
        e = banks @ (spec**2 if use_power else spec)
        row = np.log(np.maximum(e, np.finfo(np.float32).eps)) if use_log else e
        rows.append(np.r_[energy, row] if use_energy else row)
    return np.array(rows).reshape(count, bins + int(use_energy))


@pytest.mark.parity
@pytest.mark.parametrize(
    "options",
    [
        dict(window="povey", snip_edges=True),
        dict(window="hamming", snip_edges=False),
        dict(window="hanning", snip_edges=False, low=100.0, high=-400.0),
        dict(window="rectangular", snip_edges=True, use_energy=True, use_power=False),
        dict(window="povey", snip_edges=False, use_energy=True, energy_floor=0.0, use_log=False),
    ],
)
def test_kaldi_fbank_options_follow_kaldi_definition(options):
    g = torch.Generator().manual_seed(7)
    t = torch.arange(3230) / 16000
    wav = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.randn(3230, generator=g)
    names = dict(window="window_type", low="low_freq", high="high_freq", use_log="use_log_fbank")
    kwargs = {names.get(k, k): v for k, v in options.items()}
    ours = kaldi_fbank(wav, num_mel_bins=40, **kwargs).double().numpy()
    ref = kaldi_reference(wav.numpy(), bins=40, **options)
    assert ours.shape == ref.shape and ours.shape[0] == (18 if options["snip_edges"] else 20)
    # Against float64. Log features as in tests/tolerances.py, but the white-noise floor keeps every band
    # within ~40 dB of its frame's peak: 2 * 100 * eps * log2(512) = 2.1e-4 (worst seen: 3.4e-5, default).
    # Linear energies relative to the largest, where the FFT's rounding is ~eps * log2(512) = 1e-6 (worst
    # seen: 1.5e-4 absolute, on energies in the hundreds).
    tol = 2e-4 if options.get("use_log", True) else 1e-5 * np.abs(ref).max()
    assert np.abs(ours - ref).max() <= tol


def test_kaldi_fbank_shapes_and_refusals():
    wav = torch.zeros(1, 399)
    assert kaldi_fbank(wav, num_mel_bins=80).shape == (0, 80)
    assert kaldi_fbank(torch.ones(560), num_mel_bins=80).shape == (2, 80)
    with pytest.raises(ValueError, match="dither"):
        kaldi_fbank(torch.ones(800), dither=1.0)
    with pytest.raises(ValueError, match="window_type"):
        kaldi_fbank(torch.ones(800), window_type="blackmann")
    with pytest.raises(InputError, match="mono"):
        kaldi_fbank(torch.ones(2, 800))


@pytest.mark.parity
def test_whisper_log_mel_matches_vq06_input(frontend):
    wav = frontend["en1.tok.3_trimmed"][0]
    ref = frontend["en1.whisper_log_mel_128"]
    ours = whisper_log_mel(wav)
    assert ours.shape == ref.shape
    # log10-power mel / 4, values -0.6..1.4: tests/tolerances.py. Worst seen: 5.1e-5 (every capability and thread count).
    assert (ours - ref).abs().max().item() <= WHISPER_LOG_MEL
    batch = whisper_log_mel(torch.stack([wav, 0.1 * wav.flip(0)]))
    assert batch.shape == (2, *ref.shape) and torch.equal(batch[0], ours)


def test_short_audio_is_an_input_error():
    with pytest.raises(InputError, match="samples"):
        matcha_mel(torch.zeros(1, 700), MelConfig())
    with pytest.raises(InputError, match="samples"):
        whisper_log_mel(torch.zeros(150))
