"""Cutting a long recording at pauses: pieces within the limit, cuts only where nobody speaks."""

import logging

import pytest
import torch

from stepaudio_core.segment import HOP_SECONDS, MIN_PAUSE_SECONDS, find_pauses, frame_levels, segment
from stepaudio_core.transcript import WordTiming
from tests.long_recording import SAMPLE_RATE, build


@pytest.fixture(scope="module")
def recording():
    return build()


def _inside_speech(recording, a: int, b: int) -> bool:
    return any(a < e and s < b for s, e in recording.sentences)


def test_fixture_is_what_the_tests_need(recording):
    seconds = recording.wav.shape[0] / SAMPLE_RATE
    assert 70 <= seconds <= 90
    assert (recording.stretch[1] - recording.stretch[0]) / SAMPLE_RATE >= 35
    # no pause in the stretch by the detector's own rule
    a, b = recording.stretch
    margin = int(0.05 * SAMPLE_RATE)  # the pause after it starts within a frame of its end
    assert not [p for p in find_pauses(recording.wav, SAMPLE_RATE) if a + margin < p.end and p.start < b - margin]


@pytest.mark.parametrize("limit", [8.0, 15.0, 25.0])
def test_pieces_fit_the_limit_and_cuts_fall_in_pauses(recording, limit, caplog):
    with caplog.at_level(logging.WARNING, logger="stepaudio_core.segment"):
        layout = segment(recording.wav, SAMPLE_RATE, limit)
    n = recording.wav.shape[0]
    spans = [s for pair in zip(layout.pieces, layout.pauses) for s in pair] + [layout.pieces[-1]]
    assert spans[0].start == 0 and spans[-1].end == n
    assert all(a.end == b.start for a, b in zip(spans, spans[1:])), "pieces and pauses tile the recording"
    assert all(0 < len(p) <= limit * SAMPLE_RATE for p in layout.pieces)
    a, b = recording.stretch
    for piece, pause, forced in zip(layout.pieces, layout.pauses, layout.forced):
        if forced:
            # only where no pause exists, at the quietest 10 ms frame of the second half of the window
            assert len(pause) == 0 and a < pause.start < b
            hop = round(HOP_SECONDS * SAMPLE_RATE)
            levels = frame_levels(recording.wav, SAMPLE_RATE)
            lo, hi = (piece.start + int(limit * SAMPLE_RATE) // 2) // hop, (piece.start + int(limit * SAMPLE_RATE)) // hop
            assert levels[pause.start // hop] == levels[lo:hi].min()
        else:
            # the cut and the kept pause lie in silence the fixture put between sentences
            assert not _inside_speech(recording, piece.end - 1, pause.end + 1)
            assert len(pause) >= 0.1 * SAMPLE_RATE
    assert any(layout.forced), "the 35 s stretch must be cut somewhere"
    assert sum(layout.forced) == len([r for r in caplog.records if "no pause" in r.getMessage()])
    assert len(layout.voiced) == len(layout.pieces) and all(0 < v <= len(p) / SAMPLE_RATE
                                                            for v, p in zip(layout.voiced, layout.pieces))


def test_prefers_a_long_pause_near_the_limit(recording):
    layout = segment(recording.wav, SAMPLE_RATE, 15.0)
    first = layout.pieces[0]
    assert len(first) >= 7.5 * SAMPLE_RATE  # the second half of the window had pauses to choose from


def test_short_recording_is_one_piece(recording):
    wav = recording.wav[: 10 * SAMPLE_RATE]
    layout = segment(wav, SAMPLE_RATE, 15.0)
    assert len(layout.pieces) == 1 and layout.pauses == () and layout.pieces[0].end == wav.shape[0]


def test_word_timings_give_the_pauses():
    # a noisy recording (no energy pauses at all) where the recogniser knows the words
    sr = 16000
    wav = 0.1 * torch.randn(40 * sr, generator=torch.Generator().manual_seed(1))
    words = [WordTiming(f"w{i}", i * 1.0, i * 1.0 + 0.6) for i in range(40)]
    assert find_pauses(wav, sr) == []
    pauses = find_pauses(wav, sr, words=words)
    assert len(pauses) == 39 and all(len(p) == round(0.4 * sr) for p in pauses)
    layout = segment(wav, sr, 10.0, words=words)
    assert not any(layout.forced)
    for pause in layout.pauses:
        t0, t1 = pause.start / sr, pause.end / sr
        assert not any(w.start < t1 and t0 < w.end for w in words), "a cut inside a word"
    assert all(len(p) <= 10 * sr for p in layout.pieces)


def test_min_pause_is_respected():
    sr = 16000
    tone = 0.3 * torch.sin(torch.arange(2 * sr) / sr * 2 * torch.pi * 200)
    short_gap, long_gap = torch.zeros(int(0.1 * sr)), torch.zeros(int(0.5 * sr))
    wav = torch.cat([tone, short_gap, tone, long_gap, tone])
    pauses = find_pauses(wav, sr)
    assert len(pauses) == 1 and abs(len(pauses[0]) - len(long_gap)) <= 0.03 * sr
    assert MIN_PAUSE_SECONDS > 0.1
