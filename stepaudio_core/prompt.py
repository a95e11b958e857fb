"""The values that travel between the stages: an encoded prompt, and generated tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .codes import seconds_of


@dataclass(frozen=True, eq=False)
class EncodedPrompt:
    """A reference (clone) or input (edit) recording, encoded once for every later stage.

    ``tokens`` are the decoder's mixed ids (the LM's audio ids minus 65536): groups of five,
    two vq02 codes (0..1023) then three vq06 codes offset by 1024. ``mel`` is the 24 kHz prompt
    mel (1, T, 80) of the untrimmed audio and ``speaker`` the CAM++ x-vector (1, 192).
    ``audio`` is the recording as given (mono, float32) and ``speaker_id`` the reference's
    ``clone_<hash>`` name for it, computed from the original samples.
    """

    tokens: tuple[int, ...]
    mel: torch.Tensor
    speaker: torch.Tensor
    text: str
    audio: torch.Tensor
    sample_rate: int
    speaker_id: str = "debug"

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass(frozen=True, eq=False)
class GeneratedTokens:
    """Audio tokens produced by the LM (mixed decoder ids), with the prompt whose voice they carry.

    Long-form clones generate several ``pieces`` that decode separately and are joined with a
    short crossfade; everything else has exactly one piece. ``text`` is what the audio says
    (an edit's transcript, or the cloned text), which the next edit pass needs.
    """

    pieces: tuple[tuple[int, ...], ...]
    prompt: EncodedPrompt
    text: str = ""

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(t for piece in self.pieces for t in piece)

    @property
    def seconds(self) -> float:
        """Duration they decode to: 3 frames of 40 ms per group of five, per piece."""
        return sum(seconds_of(len(p)) for p in self.pieces)
