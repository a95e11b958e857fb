"""Spectral features in plain torch: the matcha prompt mel, Kaldi fbank and Whisper's log-mel.

Each function reproduces one reference recipe operation for operation (same window, padding,
STFT call, epsilon and floor, in the same order), because the networks downstream were trained
on exactly these numbers:

- ``matcha_mel``: the 24 kHz, 80-bin prompt mel of the flow decoder (matcha ``mel_spectrogram``).
- ``kaldi_fbank``: ``torchaudio.compliance.kaldi.fbank`` (CAM++ and the Paraformer front end).
- ``whisper_log_mel``: openai-whisper's ``log_mel_spectrogram`` (input of the vq06 tokenizer).

Windows and filterbanks are built once per parameter set on the CPU (small bounded caches of
pure functions) and moved to the input's device and dtype on each call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from .errors import InputError

# ---------------------------------------------------------------------------------------------
# librosa-compatible mel filterbank


def _hz_to_mel(hz: torch.Tensor, htk: bool) -> torch.Tensor:
    if htk:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = math.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + torch.log(hz / min_log_hz) / logstep
    return torch.where(hz >= min_log_hz, log, linear)


def _mel_to_hz(mel: torch.Tensor, htk: bool) -> torch.Tensor:
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = f_sp * mel
    log = min_log_hz * torch.exp(logstep * (mel - min_log_mel))
    return torch.where(mel >= min_log_mel, log, linear)


@lru_cache(maxsize=16)
def _mel_filterbank_cpu(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None):
    f64 = torch.float64
    # np.fft.rfftfreq and np.linspace, evaluated the way numpy does (float64).
    fft_freqs = torch.arange(n_fft // 2 + 1, dtype=f64) * (1.0 / (n_fft * (1.0 / sr)))
    lo, hi = _hz_to_mel(torch.tensor(float(fmin), dtype=f64), htk), _hz_to_mel(torch.tensor(float(fmax), dtype=f64), htk)
    mels = torch.arange(n_mels + 2, dtype=f64) * ((hi - lo) / (n_mels + 1)) + lo
    mels[-1] = hi
    mel_f = _mel_to_hz(mels, htk)

    fdiff = mel_f[1:] - mel_f[:-1]
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    # librosa stores the triangles in float32 before scaling them (in float64) by the area norm.
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0).float()
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights = (weights.double() * enorm[:, None]).float()
    elif norm is not None:
        raise ValueError(f"mel_filterbank: norm must be 'slaney' or None, not {norm!r}")
    return weights


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, *, htk: bool = False,
    norm: str | None = "slaney",
) -> torch.Tensor:
    """``librosa.filters.mel``: (n_mels, n_fft // 2 + 1) float32 triangles on the Slaney (or HTK) mel scale."""
    fmax = sr / 2 if fmax is None else fmax
    return _mel_filterbank_cpu(int(sr), int(n_fft), int(n_mels), float(fmin), float(fmax), bool(htk), norm).clone()


@lru_cache(maxsize=16)
def _periodic_hann_cpu(size: int) -> torch.Tensor:
    return torch.hann_window(size)


def _batched(wav: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if wav.dim() == 1:
        return wav.unsqueeze(0), True
    if wav.dim() != 2:
        raise InputError(f"{name}: expected a waveform of shape (N,) or (B, N), got {tuple(wav.shape)}")
    return wav, False


# ---------------------------------------------------------------------------------------------
# matcha prompt mel


@dataclass(frozen=True)
class MelConfig:
    """Arguments of the matcha ``mel_spectrogram`` that makes the prompt mel."""

    n_fft: int = 1920
    num_mels: int = 80
    sampling_rate: int = 24000
    hop_size: int = 480
    win_size: int = 1920
    fmin: float = 0.0
    fmax: float = 8000.0
    center: bool = False


def matcha_mel(wav: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Prompt mel of the flow decoder: (B, N) waveform at ``cfg.sampling_rate`` -> (B, T, num_mels).

    A 1-D waveform is a batch of one. T = N // hop_size for the released settings.
    """
    wav, _ = _batched(wav, "matcha_mel")
    pad = int((cfg.n_fft - cfg.hop_size) / 2)
    if wav.shape[-1] <= pad:
        raise InputError(
            f"matcha_mel: the audio has {wav.shape[-1]} samples; at least {pad + 1} "
            f"({(pad + 1) / cfg.sampling_rate:.3f} s) are needed for the prompt mel. Use a longer prompt."
        )
    y = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = _periodic_hann_cpu(cfg.win_size).to(device=wav.device, dtype=wav.dtype)
    spec = torch.stft(
        y, cfg.n_fft, hop_length=cfg.hop_size, win_length=cfg.win_size, window=window, center=cfg.center,
        pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )
    spec = torch.view_as_real(spec)
    magnitude = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
    basis = _mel_filterbank_cpu(cfg.sampling_rate, cfg.n_fft, cfg.num_mels, float(cfg.fmin), float(cfg.fmax), False, "slaney")
    mel = torch.matmul(basis.to(device=wav.device, dtype=wav.dtype), magnitude)
    return torch.log(torch.clamp(mel, min=1e-5)).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Kaldi fbank (torchaudio.compliance.kaldi.fbank)

_KALDI_WINDOWS = ("povey", "hamming", "hanning", "rectangular")


@lru_cache(maxsize=16)
def _kaldi_window_cpu(window_type: str, size: int, dtype: torch.dtype) -> torch.Tensor:
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if window_type == "povey":
        # Kaldi's default: a Hann window raised to 0.85, zero at both ends.
        return torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)
    return torch.ones(size, dtype=dtype)


def _kaldi_mel(hz):
    return 1127.0 * (1.0 + hz / 700.0).log() if isinstance(hz, torch.Tensor) else 1127.0 * math.log(1.0 + hz / 700.0)


@lru_cache(maxsize=16)
def _kaldi_mel_banks_cpu(num_bins: int, padded_window: int, sample_freq: float, low_freq: float, high_freq: float):
    """Kaldi's triangular mel banks, (num_bins, padded_window // 2 + 1), in float32 as torchaudio builds them."""
    f32 = torch.float32
    mel_low, mel_high = _kaldi_mel(low_freq), _kaldi_mel(high_freq)
    # num_bins + 1 intervals: the outer triangles reach the band edges.
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=f32).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    mel = _kaldi_mel(sample_freq / padded_window * torch.arange(padded_window // 2, dtype=f32)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1, dtype=f32), torch.min(up, down))
    # Kaldi leaves the Nyquist bin out of every triangle.
    return F.pad(banks, (0, 1))


def _kaldi_frames(wav: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    n = wav.shape[0]
    if n < size:
        return wav.new_zeros(0, size)
    if snip_edges:
        count = 1 + (n - size) // shift
    else:
        # Frames are centred on multiples of the shift; the signal is mirrored at both ends
        # (repeating the edge sample, unlike F.pad's 'reflect').
        count = (n + shift // 2) // shift
        pad = size // 2 - shift // 2
        rev = torch.flip(wav, [0])
        wav = torch.cat((rev[-pad:], wav, rev)) if pad > 0 else torch.cat((wav[-pad:], rev))
    return wav.unfold(0, size, shift)[:count] if count > 0 else wav.new_zeros(0, size)


def kaldi_fbank(
    waveform: torch.Tensor, *, sample_frequency: float = 16000.0, num_mel_bins: int = 23, frame_length: float = 25.0,
    frame_shift: float = 10.0, dither: float = 0.0, preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True, window_type: str = "povey", round_to_power_of_two: bool = True,
    snip_edges: bool = True, low_freq: float = 20.0, high_freq: float = 0.0, energy_floor: float = 1.0,
    use_energy: bool = False, use_log_fbank: bool = True, use_power: bool = True,
) -> torch.Tensor:
    """``torchaudio.compliance.kaldi.fbank`` with the same arguments and defaults: (N,) or (1, N) -> (T, bins).

    With ``use_energy`` the log frame energy (before pre-emphasis and windowing, floored at
    ``energy_floor`` when it is not 0) is the first column. A waveform shorter than one frame
    gives (0, bins). Dithering is refused: results here are deterministic.
    """
    if dither != 0.0:
        raise ValueError("kaldi_fbank: dither must be 0.0 (dithering draws noise; this pack is deterministic)")
    if window_type not in _KALDI_WINDOWS:
        raise ValueError(f"kaldi_fbank: window_type must be one of {_KALDI_WINDOWS}, not {window_type!r}")
    if waveform.dim() == 2 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.dim() != 1:
        raise InputError(f"kaldi_fbank: expected a mono waveform of shape (N,) or (1, N), got {tuple(waveform.shape)}")
    shift = int(sample_frequency * frame_shift * 0.001)
    size = int(sample_frequency * frame_length * 0.001)
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    nyquist = 0.5 * sample_frequency
    high = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not (shift > 0 and size >= 2 and padded % 2 == 0 and num_mel_bins > 3):
        raise ValueError(f"kaldi_fbank: bad framing (frame {size}, shift {shift}, fft {padded}, bins {num_mel_bins})")
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and low_freq < high):
        raise ValueError(f"kaldi_fbank: need 0 <= low_freq < high_freq <= {nyquist}, got {low_freq} and {high}")
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise ValueError(f"kaldi_fbank: preemphasis_coefficient must lie in [0, 1], got {preemphasis_coefficient}")

    device, dtype = waveform.device, waveform.dtype
    eps = torch.tensor(torch.finfo(torch.float32).eps, device=device, dtype=dtype)
    frames = _kaldi_frames(waveform, size, shift, snip_edges)
    if frames.shape[0] == 0:
        return waveform.new_zeros(0, num_mel_bins + int(use_energy))
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)
    if use_energy:
        energy = torch.max(frames.pow(2).sum(1), eps).log()
        if energy_floor != 0.0:
            energy = torch.max(energy, torch.tensor(math.log(energy_floor), device=device, dtype=dtype))
    if preemphasis_coefficient != 0.0:
        previous = torch.cat((frames[:, :1], frames[:, :-1]), dim=1)
        frames = frames - preemphasis_coefficient * previous
    frames = frames * _kaldi_window_cpu(window_type, size, dtype).to(device)
    frames = F.pad(frames, (0, padded - size))

    spectrum = torch.fft.rfft(frames).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = _kaldi_mel_banks_cpu(num_mel_bins, padded, float(sample_frequency), float(low_freq), float(high))
    fbank = torch.mm(spectrum, banks.to(device=device, dtype=dtype).T)
    if use_log_fbank:
        fbank = torch.max(fbank, eps).log()
    if use_energy:
        fbank = torch.cat((energy.unsqueeze(1), fbank), dim=1)
    return fbank


# ---------------------------------------------------------------------------------------------
# Whisper log-mel

WHISPER_N_FFT = 400
WHISPER_HOP = 160


def whisper_log_mel(wav_16k: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """Whisper's ``log_mel_spectrogram``: (N,) -> (n_mels, N // 160), or (B, N) -> (B, n_mels, N // 160).

    The dynamic-range floor (max - 8) is taken per item, so each row equals Whisper's result for
    that waveform alone.
    """
    wav, single = _batched(wav_16k, "whisper_log_mel")
    if wav.shape[-1] <= WHISPER_N_FFT // 2:
        raise InputError(
            f"whisper_log_mel: the audio has {wav.shape[-1]} samples at 16 kHz; at least "
            f"{WHISPER_N_FFT // 2 + 1} are needed. Use a longer clip."
        )
    window = _periodic_hann_cpu(WHISPER_N_FFT).to(device=wav.device, dtype=wav.dtype)
    stft = torch.stft(wav, WHISPER_N_FFT, WHISPER_HOP, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    filters = _mel_filterbank_cpu(16000, WHISPER_N_FFT, n_mels, 0.0, 8000.0, False, "slaney")
    log_spec = torch.clamp(filters.to(device=wav.device, dtype=wav.dtype) @ magnitudes, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return log_spec[0] if single else log_spec
