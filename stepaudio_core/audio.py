"""Waveform preparation, exactly as the reference does it before tokenizing a prompt.

The reference mixes the prompt to mono and caps its peak at 0.6 (``tts.preprocess_prompt_wav``);
the tokenizer then resamples to 16 kHz with torchaudio's windowed-sinc resampler, scales the peak
to 0.999 and trims silence with ``librosa.effects.trim`` plus fixed margins
(``tokenizer.preprocess_wav``). Everything here is plain torch and runs on the waveform's device.

One deliberate difference: the reference asserts that the input rate is above 16 kHz. We
upsample lower rates with the same sinc filter instead of failing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import InputError

TOKENIZER_SAMPLE_RATE = 16000
PROMPT_PEAK = 0.6


def _check_wave(wav: torch.Tensor, what: str) -> None:
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
        raise InputError(f"{what} must be a floating-point torch tensor, got {type(wav).__name__}")
    if wav.numel() == 0:
        raise InputError(f"{what} is empty (0 samples); pass a recording of at least a few milliseconds")
    if not torch.isfinite(wav).all():
        raise InputError(f"{what} contains NaN or infinite samples; check the audio that produced it")


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """(N,) or (channels, N) -> (N,) float32, averaging the channels like the reference."""
    _check_wave(wav, "audio")
    if wav.dim() == 1:
        return wav.float()
    if wav.dim() != 2:
        raise InputError(f"audio must have shape (samples,) or (channels, samples), got {tuple(wav.shape)}")
    return wav.float().mean(dim=0)


def cap_peak(wav: torch.Tensor, peak: float = PROMPT_PEAK) -> torch.Tensor:
    """Scale the clip down so that max|x| is ``peak``; quieter clips are left alone."""
    top = wav.abs().max()
    return wav / top * peak if top > peak else wav


def energy_normalize(wav: torch.Tensor) -> torch.Tensor:
    """``energy_norm_fn``: peak to 0.999, but never a gain above 99.9 (near-silent clips stay quiet)."""
    top = wav.abs().max()
    return wav / (top if top > 0.01 else 0.01) * 0.999


def sinc_resample_kernel(
    orig_freq: int,
    new_freq: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, int]:
    """torchaudio's ``sinc_interp_hann`` kernel (new, 1, 2*width + orig) for rates already divided by their gcd.

    ``dtype=None`` builds the tap grid in float64 and casts the kernel to float32 (what
    ``transforms.Resample`` does); ``dtype=torch.float32`` builds it in float32 (what
    ``functional.resample`` does for a float32 waveform). The two differ by about 1e-7.
    """
    base = min(orig_freq, new_freq) * rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base)
    idx = torch.arange(-width, width + orig_freq, dtype=dtype or torch.float64)[None, None] / orig_freq
    # torchaudio divides an integer range here, which yields float32 before meeting the float64 grid.
    phase = torch.arange(0, -new_freq, -1, dtype=torch.float32)[:, None, None] / new_freq
    t = (phase + idx) * base
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=t.dtype), t.sin() / t)
    kernel = kernel * (window * (base / orig_freq))
    return kernel.to(torch.float32), width


def resample(
    wav: torch.Tensor, orig_freq: int, new_freq: int, *, kernel_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Resample the last axis from ``orig_freq`` to ``new_freq`` Hz like torchaudio (any direction).

    The output has ceil(new * N / orig) samples. ``kernel_dtype`` is passed to
    ``sinc_resample_kernel``: None matches ``transforms.Resample`` (the tokenizer path),
    torch.float32 matches ``functional.resample`` (CosyVoice's CAM++ path).
    """
    _check_wave(wav, "audio")
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 or new_freq <= 0:
        raise InputError(f"sample rates must be positive integers, got {orig_freq} -> {new_freq}")
    if orig_freq == new_freq:
        return wav
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    # The kernel is built on the CPU: float64 is unavailable on some accelerators (MPS).
    kernel, width = sinc_resample_kernel(orig, new, dtype=kernel_dtype)
    kernel = kernel.to(wav.device, wav.dtype)
    shape = wav.shape
    x = F.pad(wav.reshape(-1, 1, shape[-1]), (width, width + orig))
    y = F.conv1d(x, kernel, stride=orig).transpose(1, 2).reshape(x.shape[0], -1)
    target = -(-new * shape[-1] // orig)
    return y[:, :target].reshape(*shape[:-1], -1)


def nonsilent_span(
    wav: torch.Tensor, top_db: float = 20.0, frame_length: int = 512, hop_length: int = 128
) -> tuple[int, int]:
    """The [start, end) sample span that ``librosa.effects.trim`` (0.10.2) returns for a 1-D clip.

    Frames of ``frame_length`` samples every ``hop_length``, centred on zero-padded edges; a
    frame is kept when its float32 RMS is more than ``top_db`` below the loudest frame's.
    """
    x = F.pad(wav.float()[None, None], (frame_length // 2, frame_length // 2))[0, 0]
    rms = x.unfold(0, frame_length, hop_length).square().mean(dim=-1).sqrt()
    # librosa squares the RMS again (amplitude_to_db); keep its float32 rounding and 1e-10 floor.
    db = 10.0 * torch.log10(rms.square().clamp_min(1e-10)) - 10.0 * torch.log10(rms.max().square().clamp_min(1e-10))
    loud = torch.nonzero(db > -top_db).flatten().tolist()
    if not loud:
        return 0, 0
    return loud[0] * hop_length, min(wav.shape[-1], (loud[-1] + 1) * hop_length)


def trim_silence(
    wav: torch.Tensor,
    sample_rate: int = TOKENIZER_SAMPLE_RATE,
    keep_left: float = 0.05,
    keep_right: float = 0.22,
    hop: int = 240,
) -> torch.Tensor:
    """The reference's ``trim_silence``: 50 ms lead, the speech rounded up to ``hop`` samples, then the tail.

    The detected onset lands at sample int(keep_left * sr), zero-padded in front when the clip
    starts sooner; the output is int(frames * hop + (keep_left + keep_right) * sr) samples,
    cropped or zero-padded at the end.
    """
    start, end = nonsilent_span(wav)
    frames = -(-(end - start) // hop)
    shift = start - int(keep_left * sample_rate)
    wav = wav[shift:] if shift > 0 else F.pad(wav, (-shift, 0))
    out_len = int(frames * hop + (keep_left + keep_right) * sample_rate)
    return wav[:out_len] if out_len < wav.shape[-1] else F.pad(wav, (0, out_len - wav.shape[-1]))


def tokenizer_preprocess(
    wav: torch.Tensor, sample_rate: int, *, trim: bool = True, energy_norm: bool = True
) -> torch.Tensor:
    """``StepAudioTokenizer.preprocess_wav``: mono (N,) at any rate -> (N',) float32 at 16 kHz.

    The clip-to-clip pipeline calls this with the mono, peak-capped prompt (``prompt_audio``);
    both vq02 and vq06 read its output.
    """
    _check_wave(wav, "audio")
    if wav.dim() != 1:
        raise InputError(
            f"the tokenizer takes mono audio of shape (samples,), got {tuple(wav.shape)}; mix it down first"
        )
    wav = resample(wav.float(), sample_rate, TOKENIZER_SAMPLE_RATE)
    if energy_norm:
        wav = energy_normalize(wav)
    if trim:
        wav = trim_silence(wav)
    return wav


def prompt_audio(wav: torch.Tensor) -> torch.Tensor:
    """``tts.preprocess_prompt_wav`` after loading: mono, peak capped at 0.6 (for the mel, speaker and tokens)."""
    return cap_peak(to_mono(wav))


def pcm16_round_trip(wav: torch.Tensor) -> torch.Tensor:
    """What writing a 16-bit WAV and reading it back does to a waveform (the reference's iteration path)."""
    return torch.clamp(torch.round(wav * 32767.0), -32768, 32767) / 32768.0
