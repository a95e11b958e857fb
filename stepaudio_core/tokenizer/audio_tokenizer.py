"""Any recording -> its dual-codebook codes, from a ``Step-Audio-Tokenizer/`` folder.

``encode`` is the reference's ``wav2token`` (trim on, energy norm on): resample to 16 kHz,
normalise, trim silence, then vq02 and vq06 read the same 16 kHz signal. Callers that also need
that signal (for its length, or to show it) call ``preprocess`` and ``encode_16k`` themselves.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..audio import tokenizer_preprocess
from ..codes import AudioCodes
from ..errors import ModelFileError
from .vq02 import VQ02Tokenizer
from .vq06 import VQ06_FILE, VQ06Tokenizer


class AudioTokenizer(nn.Module):
    """vq02 + vq06. Weights stay float32 on whatever device the module is moved to."""

    def __init__(self, vq02: VQ02Tokenizer, vq06: VQ06Tokenizer):
        super().__init__()
        self.vq02 = vq02
        self.vq06 = vq06

    @classmethod
    def from_folder(cls, folder: str | Path) -> AudioTokenizer:
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFileError(
                f"the tokenizer folder {folder} does not exist. Download stepfun-ai/Step-Audio-Tokenizer "
                "there (see README, 'Model files')."
            )
        return cls(VQ02Tokenizer.from_folder(folder), VQ06Tokenizer.from_onnx(folder / VQ06_FILE))

    @staticmethod
    def preprocess(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Mono (N,) at any rate -> the (N',) 16 kHz signal both codebooks read."""
        return tokenizer_preprocess(wav, sample_rate)

    def encode_16k(self, wav_16k: torch.Tensor, batched: bool = True) -> AudioCodes:
        """Codes of an already preprocessed 16 kHz signal; ``batched=False`` runs vq02's reference chunk loop."""
        return AudioCodes(tuple(self.vq02(wav_16k, batched=batched).tolist()), tuple(self.vq06(wav_16k).tolist()))

    def encode(self, wav: torch.Tensor, sample_rate: int) -> AudioCodes:
        """Mono (N,) float waveform at ``sample_rate`` -> codes (the reference's ``wav2token``)."""
        device = next(self.parameters()).device
        return self.encode_16k(self.preprocess(wav.to(device), sample_rate))
