"""The audio-code layout: one description shared by the tokenizer, the LM and the decoder.

A recording becomes two code streams: vq02 (1024 codes, 16.7 Hz) and vq06 (4096 codes, 25 Hz).
They are interleaved in 120 ms groups of five, two vq02 codes then three vq06 codes, and codes
left over when either stream runs out are dropped (the reference's ``wav2token``). In that
"mixed" layout vq06 codes are stored as 1024 + code, so one group spans 0..5119. The decoder
reads mixed codes as they are; the LM sees each as the token ``<audio_N>``, id 65536 + N.
One group decodes to three 40 ms frames of the 25 Hz flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InputError

AUDIO_ID_OFFSET = 65536
VQ02_CODES = 1024
VQ06_CODES = 4096
MIXED_CODES = VQ02_CODES + VQ06_CODES
GROUP = 5  # codes per group: two vq02, three vq06
GROUP_SECONDS = 0.12  # one group covers 120 ms: two vq02 frames at 16.7 Hz, three vq06 frames at 25 Hz
FRAMES_PER_GROUP = 3  # the decoder's 25 Hz frames per group
TOKENS_PER_SECOND = 125 / 3  # GROUP / GROUP_SECONDS written exactly: 41.67 LM tokens per second of audio

# id ranges [lo, hi) that each slot of a group may hold in the LM's vocabulary
VQ02_IDS = (AUDIO_ID_OFFSET, AUDIO_ID_OFFSET + VQ02_CODES)
VQ06_IDS = (AUDIO_ID_OFFSET + VQ02_CODES, AUDIO_ID_OFFSET + MIXED_CODES)
SLOT_IDS = (VQ02_IDS, VQ02_IDS, VQ06_IDS, VQ06_IDS, VQ06_IDS)


def seconds_of(n_codes: int) -> float:
    """Duration that ``n_codes`` mixed codes decode to: a partial last group is completed."""
    return -(-n_codes // GROUP) * GROUP_SECONDS


def interleave(vq02: Sequence[int], vq06: Sequence[int]) -> list[int]:
    """vq02 and vq06 code lists -> mixed codes [a, b, 1024+c, 1024+d, 1024+e] per whole group."""
    groups = min(len(vq02) // 2, len(vq06) // 3)
    mixed: list[int] = []
    for g in range(groups):
        mixed += [int(vq02[2 * g]), int(vq02[2 * g + 1])]
        mixed += [VQ02_CODES + int(c) for c in vq06[3 * g : 3 * g + 3]]
    return mixed


def audio_token_string(mixed: Sequence[int]) -> str:
    """Mixed codes -> the ``<audio_N>`` string the prompts embed (no separators)."""
    return "".join(f"<audio_{int(c)}>" for c in mixed)


def pattern_error(ids: Sequence[int]) -> str | None:
    """Where LM ids (65536 + mixed code) leave the period-5 slot pattern, or None if they do not.

    A truncated last group is accepted: the decoder completes it, as the reference does.
    """
    for i, t in enumerate(ids):
        lo, hi = SLOT_IDS[i % GROUP]
        if not lo <= int(t) < hi:
            kind = "vq02" if i % GROUP < 2 else "vq06"
            return f"token {i} is id {int(t)} where a {kind} id ({lo}..{hi - 1}) belongs"
    return None


def codes_from_ids(ids: Sequence[int]) -> list[int]:
    """LM output ids -> mixed codes, refusing anything that leaves the pattern."""
    problem = pattern_error(ids)
    if problem is not None:
        raise InputError(
            f"the LM's output is not a well-formed audio-token stream: {problem}. Groups must be two vq02 "
            "then three vq06 tokens. Turn structured decoding on (the default) so every step can only pick "
            "a token that fits its slot, or check that the model files are the released Step-Audio-EditX LM."
        )
    if not ids:
        raise InputError(
            "the LM stopped before producing any audio token. Try another seed, a higher temperature, or "
            "turn structured decoding on."
        )
    return [int(t) - AUDIO_ID_OFFSET for t in ids]


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
