"""Cutting a long recording into pieces the model can edit, only inside pauses.

The model edits at most 30 s at a time. A podcast or an audiobook chapter is minutes long, so a
long edit cuts the recording at pauses between phrases, edits each piece, and joins the pieces
back with the pauses in between (``longedit``). Where the cuts fall decides whether the joins can
be heard: a cut inside a word is a seam, a cut inside a pause is not.

Pauses come from the recording's energy: the RMS of 10 ms frames in dB, relative to the
recording's own speech level (its 95th-percentile frame), so the same rule works for a quiet
phone recording and a loud studio one. A frame is quiet when it lies far enough below that level
and close enough to the noise floor; a run of quiet frames at least ``min_pause`` long is a pause.
Where speech recognition gave word timings, the gaps between words are the pauses instead: the
recogniser knows where words are even when the background is loud.

Each piece ends at a pause chosen among those that keep it within ``max_seconds``: the longest
pause in the second half of that window (a sentence end more likely than a breath), else the
latest one. A stretch with no pause for a whole window is cut at its quietest frame, with a
warning: that one join may be heard.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .transcript import WordTiming

log = logging.getLogger(__name__)

HOP_SECONDS = 0.01  # energy frames of 10 ms
MIN_PAUSE_SECONDS = 0.25  # shorter quiet runs are stops inside words (p, t, k) or between them
KEEP_SECONDS = 0.08  # silence each piece keeps at its cut edge: the model hears a whole last syllable
LEVEL_PERCENTILE, FLOOR_PERCENTILE = 0.95, 0.05
# The quiet threshold lies halfway between the noise floor and the speech level, but never closer
# than 12 dB to speech (so soft syllables stay speech) nor further than 40 dB below it (so a clean
# recording's room tone, 60 dB down, still counts as a pause).
NEAREST_DB, FARTHEST_DB = 12.0, 40.0


@dataclass(frozen=True)
class Span:
    """Samples [start, end) of the recording."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Segmentation:
    """Pieces to edit and the pauses between them: piece 0, pause 0, piece 1, ..., the last piece.

    ``pauses[i]`` lies between ``pieces[i]`` and ``pieces[i + 1]``; it is empty where a stretch
    without pauses was cut at its quietest frame (``forced[i]``). Together the spans tile the
    recording. ``voiced`` is the seconds of sound in each piece, the proxy for how much of the
    transcript it holds.
    """

    sample_rate: int
    pieces: tuple[Span, ...]
    pauses: tuple[Span, ...]
    forced: tuple[bool, ...]
    voiced: tuple[float, ...]


def frame_levels(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """dB of each 10 ms frame of the mono ``wav`` (N,); memory: one pass over the samples."""
    hop = max(1, round(HOP_SECONDS * sample_rate))
    n = wav.shape[-1] // hop * hop
    power = wav[:n].float().view(-1, hop).square().mean(dim=1)
    if wav.shape[-1] > n:  # the last partial frame
        power = torch.cat([power, wav[n:].float().square().mean()[None]])
    # a 30 ms moving average, so one loud sample or a zero crossing does not decide a frame
    power = torch.nn.functional.avg_pool1d(power[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    return 10.0 * torch.log10(power.clamp_min(1e-10))


def quiet_frames(levels: torch.Tensor) -> torch.Tensor:
    """Which frames are quiet, by the rule in the module docstring."""
    level = torch.quantile(levels, LEVEL_PERCENTILE)
    floor = torch.quantile(levels, FLOOR_PERCENTILE)
    threshold = ((floor + level) / 2).clamp(level - FARTHEST_DB, level - NEAREST_DB)
    return levels < threshold


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) frame runs where ``mask`` is true."""
    edges = torch.diff(
        mask.to(torch.int8), prepend=torch.zeros(1, dtype=torch.int8), append=torch.zeros(1, dtype=torch.int8)
    )
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return list(zip(starts, ends))


def find_pauses(
    wav: torch.Tensor,
    sample_rate: int,
    *,
    min_pause: float = MIN_PAUSE_SECONDS,
    words: Sequence[WordTiming] | None = None,
) -> list[Span]:
    """Pauses between sounds (never at the very start or end), as sample spans, in order.

    With ``words`` (timings in seconds), the gaps between consecutive words are the pauses.
    """
    n = wav.shape[-1]
    if words:
        spans = []
        for a, b in zip(words, words[1:]):
            if b.start - a.end >= min_pause:
                spans.append(Span(max(0, round(a.end * sample_rate)), min(n, round(b.start * sample_rate))))
        return [s for s in spans if 0 < s.start < s.end < n]
    hop = max(1, round(HOP_SECONDS * sample_rate))
    quiet = quiet_frames(frame_levels(wav, sample_rate))
    frames = max(1, round(min_pause / HOP_SECONDS))
    spans = []
    for a, b in _runs(quiet):
        if b - a >= frames and a > 0 and b < quiet.shape[0]:
            spans.append(Span(a * hop, min(n, b * hop)))
    return spans


def _quietest(levels: torch.Tensor, hop: int, lo: int, hi: int, words: Sequence[WordTiming] | None, sr: int) -> int:
    """The sample at the centre of the quietest frame in samples [lo, hi), outside words if any allow it."""
    a, b = lo // hop, max(lo // hop + 1, hi // hop)
    window = levels[a:b].clone()
    if words:
        inside = torch.zeros_like(window, dtype=torch.bool)
        for w in words:
            s, e = int(w.start * sr) // hop - a, -(-int(w.end * sr) // hop) - a
            if e > 0 and s < window.shape[0]:
                inside[max(0, s) : max(0, e)] = True
        if not inside.all():
            window[inside] = float("inf")
    return min(hi - 1, (a + int(torch.argmin(window))) * hop + hop // 2)


def segment(
    wav: torch.Tensor,
    sample_rate: int,
    max_seconds: float,
    *,
    min_pause: float = MIN_PAUSE_SECONDS,
    words: Sequence[WordTiming] | None = None,
) -> Segmentation:
    """Cut the mono ``wav`` (N,) into pieces of at most ``max_seconds`` at pauses (see the module docstring)."""
    n = wav.shape[-1]
    limit = int(max_seconds * sample_rate)
    hop = max(1, round(HOP_SECONDS * sample_rate))
    keep = round(KEEP_SECONDS * sample_rate)
    levels = frame_levels(wav, sample_rate)
    pauses = find_pauses(wav, sample_rate, min_pause=min_pause, words=words)
    pieces, gaps, forced = [], [], []
    start = 0
    while n - start > limit:
        # A cut in pause p ends the piece at p.start + k and starts the next at p.end - k.
        options = []
        for p in pauses:
            k = min(keep, len(p) // 4)
            end = p.start + k
            if p.start >= start and start < end <= start + limit:
                options.append((p, k))
        late = [(p, k) for p, k in options if p.start + k - start >= limit // 2]
        if late:
            p, k = max(late, key=lambda o: (len(o[0]), o[0].start))
        elif options:
            p, k = options[-1]
        else:
            cut = _quietest(levels, hop, start + limit // 2, start + limit, words, sample_rate)
            log.warning(
                "the recording has no pause between %.1f s and %.1f s, so it is cut at its quietest moment, %.1f s; "
                "that join may be audible. A longer max_piece_seconds, or a pause in the recording, avoids it.",
                start / sample_rate,
                (start + limit) / sample_rate,
                cut / sample_rate,
            )
            pieces.append(Span(start, cut))
            gaps.append(Span(cut, cut))
            forced.append(True)
            start = cut
            continue
        pieces.append(Span(start, p.start + k))
        gaps.append(Span(p.start + k, p.end - k))
        forced.append(False)
        start = p.end - k
    pieces.append(Span(start, n))
    quiet = quiet_frames(levels)
    voiced = tuple(
        float((~quiet[s.start // hop : max(s.start // hop + 1, s.end // hop)]).sum()) * HOP_SECONDS for s in pieces
    )
    return Segmentation(int(sample_rate), tuple(pieces), tuple(gaps), tuple(forced), voiced)
