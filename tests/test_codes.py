"""The dual-codebook interleave against the reference's wav2token / merge_vq0206_to_token_str outputs."""

from __future__ import annotations

import json

import pytest

from stepaudio_core.codes import AudioCodes
from stepaudio_core.errors import InputError
from tests.paths import FIXTURES

CASES = json.loads((FIXTURES / "frontend" / "token_interleave.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{len(c['vq02'])}x{len(c['vq06'])}" for c in CASES])
def test_interleave_matches_reference(case):
    codes = AudioCodes(case["vq02"], case["vq06"])
    assert list(codes.mixed()) == case["wav2token.speech_tokens_minus_65536 (flow prompt_token mixed sequence)"]
    assert list(codes.lm_ids()) == case["wav2token.speech_tokens"]
    assert codes.token_string() == case["merge_vq0206_to_token_str"]
    if case["get_audio_tokens(merge string)"] is not None:
        assert list(codes.lm_ids()) == case["get_audio_tokens(merge string)"]
    assert len(codes.mixed()) == 5 * codes.groups


@pytest.mark.parametrize("case", CASES, ids=[f"{len(c['vq02'])}x{len(c['vq06'])}" for c in CASES])
def test_from_mixed_inverts_whole_groups(case):
    codes = AudioCodes(case["vq02"], case["vq06"])
    back = AudioCodes.from_mixed(codes.mixed())
    assert back.vq02 == codes.vq02[: 2 * codes.groups] and back.vq06 == codes.vq06[: 3 * codes.groups]


def test_codes_out_of_range_or_broken_groups_are_refused():
    with pytest.raises(InputError, match="vq02 codes"):
        AudioCodes([1024, 0], [0, 0, 0])
    with pytest.raises(InputError, match="vq06 codes"):
        AudioCodes([0, 0], [0, 4096, 0])
    with pytest.raises(InputError, match="groups of 5"):
        AudioCodes.from_mixed([1, 2, 1025])
    with pytest.raises(InputError, match="vq06 codes"):
        AudioCodes.from_mixed([1, 2, 3, 1025, 1026])  # a vq02-range id in a vq06 slot
