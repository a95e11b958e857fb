"""A complete tiny model folder: what ``models/step_audio_editx`` holds, at a few MB."""

from __future__ import annotations

from pathlib import Path

from ..bundle import DECODER_DIR, LM_DIR, TOKENIZER_DIR
from .decoder import write_tiny_decoder
from .lm import write_tiny_awq_lm, write_tiny_lm
from .tokenizer import write_tiny_tokenizer


def write_tiny_bundle(out_dir: str | Path, seed: int = 0, awq: bool = False) -> Path:
    """Write a complete tiny model folder into ``out_dir``.

    ``Step-Audio-EditX/`` gets the LM files and ``CosyVoice-300M-25Hz/``; ``Step-Audio-Tokenizer/``
    gets the Paraformer encoder, k-means codebook and S3 tokenizer, all in the released formats.
    ``awq`` adds ``Step-Audio-EditX-AWQ-4bit/`` beside them: the same LM, 4-bit pack-quantized.
    """
    out_dir = Path(out_dir)
    write_tiny_lm(out_dir, seed=seed)
    write_tiny_decoder(out_dir / LM_DIR / DECODER_DIR, seed=seed)
    write_tiny_tokenizer(out_dir / TOKENIZER_DIR, seed=seed)
    if awq:
        write_tiny_awq_lm(out_dir, seed=seed)
    return out_dir
