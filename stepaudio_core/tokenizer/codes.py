"""The dual-codebook codes of one recording and the three ways the model reads them.

vq02 (1024 codes, 16.7 Hz) and vq06 (4096 codes, 25 Hz) are interleaved in 120 ms groups of
two vq02 then three vq06 codes (``tokenizer.wav2token``); codes left over when either stream
runs out are dropped. The decoder takes the interleaved "mixed" codes (vq06 offset by 1024);
the LM sees each as the token ``<audio_N>``, id 65536 + N. The vocabulary layout itself lives
in ``lm/audio_tokens.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError
from ..lm.audio_tokens import AUDIO_ID_OFFSET, GROUP, VQ02_CODES, VQ06_CODES, audio_token_string, interleave


def _codes(values: Iterable[int], size: int, name: str) -> tuple[int, ...]:
    codes = tuple(int(v) for v in values)
    bad = [c for c in codes if not 0 <= c < size]
    if bad:
        raise InputError(f"{name} codes must lie in 0..{size - 1}; got {bad[:5]}")
    return codes


@dataclass(frozen=True)
class AudioCodes:
    """vq02 and vq06 codes of one recording, raw (without any offset)."""

    vq02: tuple[int, ...]
    vq06: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "vq02", _codes(self.vq02, VQ02_CODES, "vq02"))
        object.__setattr__(self, "vq06", _codes(self.vq06, VQ06_CODES, "vq06"))

    @property
    def groups(self) -> int:
        """Number of whole 120 ms groups: the shorter stream decides."""
        return min(len(self.vq02) // 2, len(self.vq06) // 3)

    def mixed(self) -> tuple[int, ...]:
        """The decoder's layout (``wav2token``'s tokens - 65536): per group c02, c02, 1024 + c06 (x3)."""
        return tuple(interleave(self.vq02, self.vq06))

    def lm_ids(self) -> tuple[int, ...]:
        """Token ids of the LM prompt (``wav2token``'s speech tokens)."""
        return tuple(AUDIO_ID_OFFSET + m for m in self.mixed())

    def token_string(self) -> str:
        """The ``<audio_N>`` text the reference puts into the LM prompt (``merge_vq0206_to_token_str``)."""
        return audio_token_string(self.mixed())

    @classmethod
    def from_mixed(cls, mixed: Iterable[int]) -> AudioCodes:
        """Split whole groups of mixed codes (e.g. LM output minus 65536) back into the two streams."""
        ids = [int(m) for m in mixed]
        if len(ids) % GROUP:
            raise InputError(f"mixed audio codes come in groups of {GROUP}; got {len(ids)} codes")
        vq02 = [m for i, m in enumerate(ids) if i % GROUP < 2]
        vq06 = [m - VQ02_CODES for i, m in enumerate(ids) if i % GROUP >= 2]
        return cls(tuple(vq02), tuple(vq06))
