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
from typing import TYPE_CHECKING

import numpy as np

from .edits import LANGUAGE_TAGS, PARALINGUISTIC_TAGS, EditType, check_edit
from .errors import InputError
from .limits import (
    DEFAULT_FLOW_STEPS,
    DEFAULT_PIECE_SECONDS,
    DEFAULT_TEMPERATURE,
    MAX_EDIT_PASSES,
    MAX_FLOW_STEPS,
    MAX_GENERATION_SECONDS,
    MAX_PAUSE_SECONDS,
    MAX_RATE,
    MAX_RECORDING_SECONDS,
    MAX_RESAMPLE_KERNEL,
    MAX_TEMPERATURE,
    MIN_FLOW_STEPS,
    MIN_PIECE_SECONDS,
    MIN_RATE,
    MIN_SECONDS,
    MIN_TEMPERATURE,
    MODEL_RATES,
    SEED_MAX,
    SEED_MIN,
    SILENCE_PEAK,
    TRANSCRIPT_MAX_RATE,
    TRANSCRIPT_MIN_RATE,
    TRANSCRIPT_MIN_SLACK,
    TRANSCRIPT_SLACK,
    WINDOW_SECONDS,
)
from .longform import spoken_units
from .vocabulary import Message

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_TAG = re.compile(r"\[([^\[\]]{1,40})\]")


def _resample_kernel_size(orig: int, new: int) -> int:
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    return new * (orig + 2 * width)


def check_sample_rate(sample_rate, name: str = "audio") -> int:
    """The sample rate of input ``name`` as an int, or InputError saying which rates work."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise InputError(lambda v: f"the sample rate of {v.input(name)} must be a number of Hz, not {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate != int(sample_rate):
        raise InputError(lambda v: f"the sample rate of {v.input(name)} must be a whole number of Hz, not {sample_rate}")
    rate = int(sample_rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(
            lambda v: f"{v.input(name)} is sampled at {rate} Hz; use a recording sampled between {MIN_RATE} and "
            f"{MAX_RATE} Hz (16000, 24000, 44100 and 48000 Hz are typical)"
        )
    taps = max(_resample_kernel_size(rate, new) for new in MODEL_RATES)
    if taps > MAX_RESAMPLE_KERNEL:
        raise InputError(
            lambda v: f"{v.input(name)} is sampled at {rate} Hz, an unusual rate: resampling it to the model's 16 and 24 kHz "
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
    import torch  # here, not at the top: the CLI checks its flags before paying for torch's import

    rate = check_sample_rate(sample_rate, name)
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise InputError(lambda v: f"{v.input(name)} must be a waveform tensor, not {type(wav).__name__}")
    if wav.dim() not in (1, 2):
        raise InputError(
            lambda v: f"{v.input(name)} must be one clip of shape (channels, samples) or (samples,); got shape {tuple(wav.shape)}"
        )
    if wav.dtype == torch.bool or wav.is_complex():
        raise InputError(lambda v: f"{v.input(name)} holds {wav.dtype} values; a waveform holds real numbers")
    wav = wav.detach().cpu()
    if not wav.is_floating_point():
        # integer PCM (int16: +-32768): the full range of the type maps to [-1, 1]
        wav = wav.double() / (torch.iinfo(wav.dtype).max + 1)
    wav = wav.float()
    if wav.shape[-1] == 0 or wav.numel() == 0:
        raise InputError(lambda v: f"{v.input(name)} is empty (0 samples); {v.phrase('give speech')}")
    if wav.dim() == 2 and wav.shape[0] > wav.shape[1]:
        raise InputError(
            lambda v: f"{v.input(name)} has shape {tuple(wav.shape)}: more channels than samples, so it is probably laid "
            "out as (samples, channels). Transpose it to (channels, samples)."
        )
    seconds = wav.shape[-1] / rate
    if seconds > MAX_RECORDING_SECONDS:
        raise InputError(
            lambda v: f"{v.input(name)} is {seconds / 60:.1f} min long; recordings up to {MAX_RECORDING_SECONDS / 60:.0f} "
            f"min are accepted (Clone uses the first {WINDOW_SECONDS:.0f} s, Edit edits any length in pieces). Cut it "
            "into parts first."
        )
    if seconds < MIN_SECONDS:
        raise InputError(
            lambda v: f"{v.input(name)} is {1000 * seconds:.1f} ms long, shorter than one frame of the audio tokenizer "
            f"({1000 * MIN_SECONDS:.0f} ms); give a recording of at least a second of speech"
        )
    if not torch.isfinite(wav).all():
        raise InputError(
            lambda v: f"{v.input(name)} contains NaN or infinite samples; {v.phrase('bad samples')}."
        )
    peak = float(wav.abs().max())
    if peak > 1.0:
        log.warning(Message(
            lambda v: f"{v.input(name)} has samples up to {peak:.4g}, outside [-1, 1] (integer PCM values in a float "
            "tensor?); scaled to peak 1.0. Convert the audio to floats in [-1, 1] upstream to avoid this warning."
        ))
        wav = wav / peak
    # measured on the mono mix the models hear; a constant offset is not sound, so around the mean
    mono = wav.mean(dim=0) if wav.dim() == 2 else wav
    swing = float((mono - mono.mean()).abs().max())
    if swing < SILENCE_PEAK:
        level = 20 * math.log10(swing) if swing > 0 else -math.inf
        raise InputError(
            lambda v: f"{v.input(name)} is silent (its peak is {level:.0f} dBFS); {v.phrase('give speaker')}"
        )
    return wav, rate


def text_input(text, name: str, *, fix: str | None = None) -> str:
    """``text`` stripped of surrounding whitespace; InputError if it is not a string, or empty when ``fix`` is given."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(lambda v: f"{v.input(name)} must be text, not {type(text).__name__}")
    text = text.strip()
    if not text and fix is not None:
        raise InputError(lambda v: f"{v.input(name)} is empty; {fix}")
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
    log.warning(Message(
        lambda v: f"{v.input(name)} ({len(transcript)} characters) is {problem} for {seconds:.1f} s of audio; it "
        "should be exactly what the recording says. A transcript of other speech makes cloning and editing worse."
    ))
    return True


def warn_untagged_paralinguistic(new_text: str, name: str = "new_text") -> bool:
    """Log a warning when a paralinguistic text has none of the model's sound tags."""
    tags = _TAG.findall(new_text)
    if any(f"[{t}]" in PARALINGUISTIC_TAGS for t in tags):
        return False
    unknown = [f"[{t}]" for t in tags if t not in LANGUAGE_TAGS]
    found = f"its tags {', '.join(unknown)} are not ones the model knows" if unknown else "it has no tag"
    log.warning(Message(
        lambda v: f"{v.input(name)} of a paralinguistic edit: {found}, so the edit may add no sound. Write one of "
        f"{' '.join(PARALINGUISTIC_TAGS)} where the sound belongs, e.g. 'I can't believe it [Laughter] worked.'"
    ))
    return True


def check_edit_max_seconds(max_seconds, name: str = "max_seconds") -> float | None:
    """None (the edit's own budget) or a cap in (0, WINDOW_SECONDS] on the audio one edit generation makes."""
    if max_seconds is None:
        return None
    seconds = _number(max_seconds, name)
    if not 0 < seconds <= WINDOW_SECONDS:  # NaN fails this too
        raise InputError(lambda v: f"{v.input(name)} must be above 0 and at most {WINDOW_SECONDS:.0f} s; got {max_seconds}")
    return seconds


def check_piece_seconds(seconds, name: str = "max_piece_seconds") -> float:
    """The longest piece a long edit may cut; None gives the default."""
    if seconds is None:
        return DEFAULT_PIECE_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)) or not (
        MIN_PIECE_SECONDS <= seconds <= WINDOW_SECONDS
    ):
        raise InputError(
            lambda v: f"{v.input(name)} must be between {MIN_PIECE_SECONDS:.0f} and {WINDOW_SECONDS:.0f} s (the "
            f"model's window); got {seconds!r}. {DEFAULT_PIECE_SECONDS:.0f} s leaves room for a slower speed edit."
        )
    return float(seconds)


def warn_clone_window(seconds: float, name: str = "prompt") -> bool:
    """A clone reference longer than the window is used up to the window: say so."""
    if seconds <= WINDOW_SECONDS:
        return False
    w = WINDOW_SECONDS
    log.warning(Message(
        lambda v: f"the reference in {v.input(name)} is {seconds:.1f} s long; the model reads at most {w:.0f} s, so "
        f"cloning uses its first {w:.0f} s while the transcript still describes all of it. Trim the reference to "
        f"under {w:.0f} s and give the transcript of exactly that part for the best likeness."
    ))
    return True


def check_seed(seed, name: str = "seed") -> int:
    """A seed torch.Generator takes, with room for the +i of later passes and pieces."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(lambda v: f"{v.input(name)} must be a whole number, not {seed!r}")
    if not SEED_MIN <= int(seed) <= SEED_MAX:
        raise InputError(lambda v: f"{v.input(name)} must lie between {SEED_MIN} and 2^63 - 1; got {seed}")
    return int(seed)


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(lambda v: f"{v.input(name)} must be a number, not {value!r}")
    return float(value)


def check_temperature(temperature, name: str = "temperature") -> float:
    t = _number(temperature, name)
    if not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE:  # NaN fails this too
        raise InputError(
            lambda v: f"{v.input(name)} must be in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]; got {temperature} "
            f"({DEFAULT_TEMPERATURE} is the released setting)"
        )
    return t


def check_flow_steps(steps, name: str = "flow_steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not MIN_FLOW_STEPS <= steps <= MAX_FLOW_STEPS:
        raise InputError(
            lambda v: f"{v.input(name)} must be between {MIN_FLOW_STEPS} and {MAX_FLOW_STEPS}; got {steps!r} "
            f"({DEFAULT_FLOW_STEPS} is the released setting)"
        )
    return int(steps)


def check_passes(n_iter, name: str = "iterations") -> int:
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or not 1 <= n_iter <= MAX_EDIT_PASSES:
        raise InputError(
            lambda v: f"the number of edit passes ({v.input(name)}) must be between 1 and {MAX_EDIT_PASSES}; got {n_iter!r}"
        )
    return int(n_iter)


def check_max_seconds(max_seconds, name: str = "max_seconds") -> float | None:
    """None (derive the bound from the text) or a duration in (0, MAX_GENERATION_SECONDS]."""
    if max_seconds is None:
        return None
    seconds = _number(max_seconds, name)
    if not 0 < seconds <= MAX_GENERATION_SECONDS:  # NaN fails this too
        raise InputError(
            lambda v: f"{v.input(name)} must be above 0 and at most {MAX_GENERATION_SECONDS:.0f} s (or unset, to derive it from "
            f"the text); got {max_seconds}"
        )
    return seconds


def check_pause(pause, name: str = "pause") -> float:
    """A dialogue's pause between lines, in [0, MAX_PAUSE_SECONDS] seconds."""
    if isinstance(pause, bool) or not isinstance(pause, (int, float)) or not 0 <= pause <= MAX_PAUSE_SECONDS:
        raise InputError(lambda v: f"{v.input(name)} must be between 0 and {MAX_PAUSE_SECONDS:.0f} seconds; got {pause!r}")
    return float(pause)


def check_edit_request(
    edit_type, option, transcript: str, new_text
) -> tuple[EditType, str | None, str]:
    """An edit's type, option and texts checked together: (the type, its option or None, the new text).

    ``transcript`` is the edited recording's (already checked) text; the new text is stripped.
    """
    kind, option = check_edit(edit_type, option)
    if kind.needs_audio_text and not transcript:
        raise InputError(
            lambda v: f"the {kind.name} edit needs the transcript of the recording; {v.phrase('give transcript')}"
        )
    new_text = text_input(new_text, "new_text")
    if kind.needs_new_text:
        if not new_text:
            raise InputError(
                lambda v: f"{v.input('new_text')} is empty: a paralinguistic edit needs the new text, with tags such as "
                "[Laughter] where the sounds go"
            )
        warn_untagged_paralinguistic(new_text)
    return kind, option, new_text
