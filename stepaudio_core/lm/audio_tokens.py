"""How audio codes live in the LM's vocabulary.

Audio is a stream of groups of five: two vq02 codes (0..1023) then three vq06 codes stored as
1024 + code (1024..5119). These "mixed" codes are the token ``<audio_N>``, id 65536 + N. The
reference interleaves whole groups only and drops what is left over (docs lm.md 5.4); the
decoder takes the mixed codes as they are (decoder/token2wav.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError

AUDIO_ID_OFFSET = 65536
VQ02_CODES = 1024
VQ06_CODES = 4096
GROUP = 5
TOKENS_PER_SECOND = 125 / 3  # one group of five per 120 ms: 41.67 tokens per second of audio

# id ranges [lo, hi) that each slot of a group may hold
VQ02_IDS = (AUDIO_ID_OFFSET, AUDIO_ID_OFFSET + VQ02_CODES)
VQ06_IDS = (AUDIO_ID_OFFSET + VQ02_CODES, AUDIO_ID_OFFSET + VQ02_CODES + VQ06_CODES)
SLOT_IDS = (VQ02_IDS, VQ02_IDS, VQ06_IDS, VQ06_IDS, VQ06_IDS)


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
