"""A 80 s recording built from the fixture voices: sentences with pauses, and a 35 s stretch without one.

Built in code (no committed long file): the two espeak utterances, trimmed to their speech, are
laid end to end with pauses of 0.5-1.1 s between sentences; in the middle, 35 s of them follow
each other with no gap at all. A faint noise floor (-70 dBFS) runs under everything, as in any
real recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import soundfile as sf
import torch

from stepaudio_core.audio import nonsilent_span
from tests.conftest import FIXTURES

SAMPLE_RATE = 24000
SENTENCES = {
    "en1_24k.wav": "Hello there, this is my reference voice.",
    "en2_24k.wav": "Please call Stella and bring the things.",
}
PAUSES = (0.6, 0.9, 0.5, 1.1, 0.7)  # seconds, in turn


@dataclass(frozen=True)
class LongRecording:
    wav: torch.Tensor  # (N,) mono float32 at SAMPLE_RATE
    transcript: str
    sentences: tuple[tuple[int, int], ...]  # [start, end) samples of each sentence, in order
    texts: tuple[str, ...]  # what each sentence says
    stretch: tuple[int, int]  # the part with no pause


def _speech(name: str) -> torch.Tensor:
    data, sr = sf.read(FIXTURES / "audio" / name, dtype="float32")
    assert sr == SAMPLE_RATE
    wav = torch.from_numpy(data)
    start, end = nonsilent_span(wav, top_db=35)
    return wav[start:end]


def build(head_seconds: float = 25.0, stretch_seconds: float = 35.0, tail_seconds: float = 12.0) -> LongRecording:
    """Sentences with pauses for ``head_seconds``, the pauseless stretch, then sentences again."""
    clips = [(_speech(name), text) for name, text in SENTENCES.items()]
    parts, texts, sentences, pos, turn = [], [], [], 0, 0

    def add(clip: torch.Tensor, text: str) -> None:
        nonlocal pos
        parts.append(clip)
        texts.append(text)
        sentences.append((pos, pos + clip.shape[0]))
        pos += clip.shape[0]

    def pause() -> None:
        nonlocal pos, turn
        n = int(PAUSES[turn % len(PAUSES)] * SAMPLE_RATE)
        parts.append(torch.zeros(n))
        pos += n
        turn += 1

    def sentences_for(seconds: float) -> None:
        end = pos + seconds * SAMPLE_RATE
        while pos < end:
            clip, text = clips[turn % 2]
            add(clip, text)
            pause()

    sentences_for(head_seconds)
    start = pos
    i = 0
    while pos - start < stretch_seconds * SAMPLE_RATE:
        add(*clips[i % 2])
        i += 1
    stretch = (start, pos)
    pause()
    sentences_for(tail_seconds)
    wav = torch.cat(parts)
    wav = wav + 3e-4 * torch.randn(wav.shape[0], generator=torch.Generator().manual_seed(0))
    return LongRecording(wav.float(), " ".join(texts), tuple(sentences), tuple(texts), stretch)
