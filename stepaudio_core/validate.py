"""Checking what a user passes in, before any model runs.

The facade calls these at its boundary, so a bad recording or an empty text fails in
milliseconds with one sentence that names the input and the fix, instead of a stack trace from
deep inside a model (the nodes add their own name in front). What can be repaired without
guessing is repaired and logged: integer-range samples are scaled to [-1, 1]. What only looks
wrong (a transcript far too long for its audio, a paralinguistic text without a tag) is logged,
because the reference accepts it and the user may mean it.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import torch

from .edits import LANGUAGE_TAGS, PARALINGUISTIC_TAGS
from .errors import InputError
from .longform import spoken_units

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0  # the release: "keep audio under 30 seconds per inference"
# Long edits take whole podcast segments and audiobook chapters; a longer file is more likely a mistake
# (a whole album), and its samples alone would take gigabytes.
MAX_RECORDING_SECONDS = 1800.0
# A recording longer than max_piece_seconds is edited in pieces cut at pauses (longedit). Edits may
# run 2.5x their input + 5 s within the window; 15 s leaves room for a slower speed edit.
DEFAULT_PIECE_SECONDS, MIN_PIECE_SECONDS = 15.0, 3.0
MIN_SECONDS = 880 / 16000  # one vq02 frame: shorter 16 kHz clips give no vq02 code at all
MIN_RATE, MAX_RATE = 8000, 384000
SILENCE_PEAK = 1e-3  # -60 dBFS: quieter than any usable recording
# Resampling by a ratio p/q (in lowest terms) builds a (q, p + taps) sinc kernel: 44101 Hz -> 16 kHz
# would need 700M weights, many GB. Refuse such rates instead of exhausting the machine's memory;
# every standard rate needs under 0.3M, and 16M already costs about 0.9 GB while it runs.
MAX_RESAMPLE_KERNEL = 16_000_000
MODEL_RATES = (16000, 24000)  # the tokenizer and CAM++ read 16 kHz, the prompt mel 24 kHz
# spoken_units per second of audio: ~12-15 in ordinary speech, in any of the supported languages
TRANSCRIPT_MAX_RATE, TRANSCRIPT_SLACK = 40.0, 20.0
TRANSCRIPT_MIN_RATE, TRANSCRIPT_MIN_SLACK = 1.5, 5.0
_TAG = re.compile(r"\[([^\[\]]{1,40})\]")


def _resample_kernel_size(orig: int, new: int) -> int:
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    return new * (orig + 2 * width)


def check_sample_rate(sample_rate, name: str = "audio") -> int:
    """The sample rate of input ``name`` as an int, or InputError saying which rates work."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise InputError(f"the sample rate of input '{name}' must be a number of Hz, not {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate != int(sample_rate):
        raise InputError(f"the sample rate of input '{name}' must be a whole number of Hz, not {sample_rate}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(
            f"input '{name}' is sampled at {rate} Hz; use a recording sampled between {MIN_RATE} and {MAX_RATE} Hz "
            "(16000, 24000, 44100 and 48000 Hz are typical)"
        )
    taps = max(_resample_kernel_size(rate, new) for new in MODEL_RATES)
    if taps > MAX_RESAMPLE_KERNEL:
        raise InputError(
            f"input '{name}' is sampled at {rate} Hz, an unusual rate: resampling it to the model's 16 and 24 kHz "
            f"would need a filter of {taps / 1e6:.0f}M weights (gigabytes of memory). Resample it to a standard "
            "rate (16000, 22050, 24000, 44100 or 48000 Hz) first."
        )
    return rate


def prepare_audio(wav, sample_rate, name: str = "audio") -> tuple[torch.Tensor, int]:
    """A recording as the pipeline takes it: float32 on the CPU, (channels, samples) or (samples,).

    Raises InputError for anything that cannot be speech (empty, too short, silent, NaN/Inf,
    samples-by-channels layout, an unusable rate). Integer PCM is scaled by its full range;
    float samples beyond [-1, 1] are scaled to peak 1.0 with a warning.
    """
    rate = check_sample_rate(sample_rate, name)
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise InputError(f"input '{name}' must be a waveform tensor, not {type(wav).__name__}")
    if wav.dim() not in (1, 2):
        raise InputError(
            f"input '{name}' must be one clip of shape (channels, samples) or (samples,); got shape {tuple(wav.shape)}"
        )
    if wav.dtype == torch.bool or wav.is_complex():
        raise InputError(f"input '{name}' holds {wav.dtype} values; a waveform holds real numbers")
    wav = wav.detach().cpu()
    if not wav.is_floating_point():
        # integer PCM (int16: +-32768): the full range of the type maps to [-1, 1]
        wav = wav.double() / (torch.iinfo(wav.dtype).max + 1)
    wav = wav.float()
    if wav.shape[-1] == 0 or wav.numel() == 0:
        raise InputError(f"input '{name}' is empty (0 samples); connect a recording of speech")
    if wav.dim() == 2 and wav.shape[0] > wav.shape[1]:
        raise InputError(
            f"input '{name}' has shape {tuple(wav.shape)}: more channels than samples, so it is probably laid "
            "out as (samples, channels). Transpose it to (channels, samples)."
        )
    seconds = wav.shape[-1] / rate
    if seconds > MAX_RECORDING_SECONDS:
        raise InputError(
            f"input '{name}' is {seconds / 60:.1f} min long; recordings up to {MAX_RECORDING_SECONDS / 60:.0f} min "
            f"are accepted (Clone uses the first {WINDOW_SECONDS:.0f} s, Edit edits any length in pieces). Cut it "
            "into parts first."
        )
    if seconds < MIN_SECONDS:
        raise InputError(
            f"input '{name}' is {1000 * seconds:.1f} ms long, shorter than one frame of the audio tokenizer "
            f"({1000 * MIN_SECONDS:.0f} ms); give a recording of at least a second of speech"
        )
    if not torch.isfinite(wav).all():
        raise InputError(
            f"input '{name}' contains NaN or infinite samples; the node that produced it failed. Fix or replace "
            "that audio (e.g. re-export it)."
        )
    peak = float(wav.abs().max())
    if peak > 1.0:
        log.warning(
            "input '%s' has samples up to %.4g, outside [-1, 1] (integer PCM values in a float tensor?); scaled "
            "to peak 1.0. Convert the audio to floats in [-1, 1] upstream to avoid this warning.", name, peak,
        )
        wav = wav / peak
    # measured on the mono mix the models hear; a constant offset is not sound, so around the mean
    mono = wav.mean(dim=0) if wav.dim() == 2 else wav
    swing = float((mono - mono.mean()).abs().max())
    if swing < SILENCE_PEAK:
        level = 20 * math.log10(swing) if swing > 0 else -math.inf
        raise InputError(
            f"input '{name}' is silent (its peak is {level:.0f} dBFS); connect a recording of someone speaking"
        )
    return wav, rate


def text_input(text, name: str, *, fix: str | None = None) -> str:
    """``text`` stripped of surrounding whitespace; InputError if it is not a string, or empty when ``fix`` is given."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"input '{name}' must be text, not {type(text).__name__}")
    text = text.strip()
    if not text and fix is not None:
        raise InputError(f"input '{name}' is empty; {fix}")
    return text


def warn_transcript_mismatch(transcript: str, seconds: float, name: str = "transcript") -> bool:
    """Log a warning when ``transcript`` is far too long or short to be what ``seconds`` of audio say."""
    if not transcript:
        return False
    units = spoken_units(transcript)
    if units > TRANSCRIPT_MAX_RATE * seconds + TRANSCRIPT_SLACK:
        problem = "far too long"
    elif units < TRANSCRIPT_MIN_RATE * seconds - TRANSCRIPT_MIN_SLACK:
        problem = "far too short"
    else:
        return False
    log.warning(
        "input '%s' (%d characters) is %s for %.1f s of audio; it should be exactly what the recording says. "
        "A transcript of other speech makes cloning and editing worse.", name, len(transcript), problem, seconds,
    )
    return True


def warn_untagged_paralinguistic(new_text: str, name: str = "new_text") -> bool:
    """Log a warning when a paralinguistic text has none of the model's sound tags."""
    tags = _TAG.findall(new_text)
    if any(f"[{t}]" in PARALINGUISTIC_TAGS for t in tags):
        return False
    unknown = [f"[{t}]" for t in tags if t not in LANGUAGE_TAGS]
    found = f"its tags {', '.join(unknown)} are not ones the model knows" if unknown else "it has no tag"
    log.warning(
        "input '%s' of a paralinguistic edit: %s, so the edit may add no sound. Write one of %s where the sound "
        "belongs, e.g. 'I can't believe it [Laughter] worked.'", name, found, " ".join(PARALINGUISTIC_TAGS),
    )
    return True


def check_piece_seconds(seconds, name: str = "max_piece_seconds") -> float:
    """The longest piece a long edit may cut; None gives the default."""
    if seconds is None:
        return DEFAULT_PIECE_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)) or not (
        MIN_PIECE_SECONDS <= seconds <= WINDOW_SECONDS
    ):
        raise InputError(
            f"input '{name}' must be between {MIN_PIECE_SECONDS:.0f} and {WINDOW_SECONDS:.0f} s (the model's "
            f"window); got {seconds!r}. {DEFAULT_PIECE_SECONDS:.0f} s leaves room for a slower speed edit."
        )
    return float(seconds)


def warn_clone_window(seconds: float, name: str = "prompt") -> bool:
    """A clone reference longer than the window is used up to the window: say so."""
    if seconds <= WINDOW_SECONDS:
        return False
    log.warning(
        "the reference in input '%s' is %.1f s long; the model reads at most %.0f s, so cloning uses its first "
        "%.0f s while the transcript still describes all of it. Trim the reference to under %.0f s and give the "
        "transcript of exactly that part for the best likeness.", name, seconds, WINDOW_SECONDS, WINDOW_SECONDS,
        WINDOW_SECONDS,
    )
    return True


def check_seed(seed, name: str = "seed") -> int:
    """A seed torch.Generator takes, with room for the +i of later passes and pieces."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"input '{name}' must be a whole number, not {seed!r}")
    if not -(2**63) <= int(seed) < 2**63:
        raise InputError(f"input '{name}' must lie between -2^63 and 2^63 - 1; got {seed}")
    return int(seed)
