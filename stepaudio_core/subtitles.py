"""Subtitles (SRT) from exact sample offsets: times are rounded to the millisecond only when written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` shown from sample ``start`` up to (not including) sample ``end``."""

    start: int
    end: int
    text: str


def srt_time(samples: int, sample_rate: int) -> str:
    """``HH:MM:SS,mmm`` of a sample offset, rounded to the nearest millisecond (integer arithmetic: no drift)."""
    ms = (2 * samples * 1000 + sample_rate) // (2 * sample_rate)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{ms:03d}"


def to_srt(cues: Iterable[Cue], sample_rate: int) -> str:
    """SubRip text: numbered cues, ``start --> end``, the text (blank lines inside it removed), a blank line."""
    blocks = []
    for i, cue in enumerate(cues, start=1):
        text = "\n".join(line.strip() for line in cue.text.splitlines() if line.strip())
        blocks.append(f"{i}\n{srt_time(cue.start, sample_rate)} --> {srt_time(cue.end, sample_rate)}\n{text}\n")
    return "\n".join(blocks)
