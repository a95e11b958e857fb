"""The values that travel between the stages: an encoded prompt, and generated tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class EncodedPrompt:
    """A reference (clone) or input (edit) recording, encoded once for every later stage.

    ``tokens`` are the decoder's mixed ids (the LM's audio ids minus 65536): groups of five,
    two vq02 codes (0..1023) then three vq06 codes offset by 1024. ``mel`` is the 24 kHz prompt
    mel (1, T, 80) of the untrimmed audio and ``speaker`` the CAM++ x-vector (1, 192).
    """

    tokens: tuple[int, ...]
    mel: torch.Tensor
    speaker: torch.Tensor
    text: str
    audio: torch.Tensor
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass(frozen=True, eq=False)
class GeneratedTokens:
    """Audio tokens produced by the LM (mixed decoder ids), with the prompt they continue."""

    tokens: tuple[int, ...]
    prompt: EncodedPrompt

    @property
    def seconds(self) -> float:
        """Duration they decode to: 3 frames of 40 ms per group of five."""
        return -(-len(self.tokens) // 5) * 0.12
