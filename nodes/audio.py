"""ComfyUI AUDIO values: ``{"waveform": Tensor[B, C, T] float32, "sample_rate": int}``."""

from __future__ import annotations

import torch


def to_comfy_audio(waveforms: list[torch.Tensor], sample_rate: int) -> dict:
    """Mono clips (N,) -> one AUDIO batch [B, 1, T]; shorter clips are padded with silence at the end."""
    length = max(w.shape[-1] for w in waveforms)
    batch = torch.zeros(len(waveforms), 1, length)
    for i, w in enumerate(waveforms):
        batch[i, 0, : w.shape[-1]] = w.detach().float().cpu()
    return {"waveform": batch, "sample_rate": int(sample_rate)}
