"""The LM's mixed token stream -> the flow's (T, 2) layout, and the prompt-mel alignment."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stepaudio_core.decoder.token2wav import align_prompt_mel, reshape_mixed_tokens
from stepaudio_core.errors import InputError

FLOW = Path(__file__).parent / "fixtures" / "flow"
CASES = json.loads((FLOW / "reshape.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_reshape_matches_reference(name):
    case = CASES[name]
    got = reshape_mixed_tokens(case["mixed"])
    assert got.dtype == torch.long
    assert got.tolist() == case["reshaped_T_by_2"]


def test_reshape_of_golden_flow_inputs():
    io = load_file(FLOW / "io.safetensors")
    assert torch.equal(reshape_mixed_tokens(io["prompt_token_mixed"])[None], io["a.flow_in.prompt_token"])
    for case in "ab":
        assert torch.equal(reshape_mixed_tokens(io[f"{case}.token_mixed"])[None], io[f"{case}.flow_in.token"])


def test_prompt_mel_alignment_matches_reference():
    io = load_file(FLOW / "io.safetensors")
    frames = io["a.flow_in.prompt_token"].shape[1]
    got = align_prompt_mel(io["prompt_feat_raw"], frames)
    assert torch.equal(got, io["a.flow_in.prompt_feat"])


@pytest.mark.parametrize("mixed", [[], [5000, 1, 1024, 1024, 1024], [1, 2, 3, 1024, 1024], [1, 2, 1024, 1024, 6000]])
def test_reshape_rejects_malformed_streams(mixed):
    with pytest.raises(InputError):
        reshape_mixed_tokens(mixed)
