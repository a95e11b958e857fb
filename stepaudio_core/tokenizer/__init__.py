"""The dual-codebook audio tokenizer: vq02 (Paraformer + k-means) and vq06 (S3 tokenizer v1, 25 Hz).

The codes it produces, and how they interleave, are described in ``stepaudio_core.codes``.
"""

from .audio_tokenizer import AudioTokenizer

__all__ = ["AudioTokenizer"]
