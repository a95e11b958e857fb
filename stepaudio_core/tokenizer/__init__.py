"""The dual-codebook audio tokenizer: vq02 (Paraformer + k-means) and vq06 (S3 tokenizer v1, 25 Hz)."""

from .audio_tokenizer import AudioTokenizer
from .codes import AudioCodes

__all__ = ["AudioCodes", "AudioTokenizer"]
