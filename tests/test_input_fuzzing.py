"""Hypothesis fuzzing of the audio and text inputs: every clip gives audio or our error naming the input."""

from __future__ import annotations

import re

import torch
from hypothesis import event, given
from hypothesis import strategies as st

from tests.node_env import FUZZ, assert_audio

# ---------------------------------------------------------------------------- fuzzing


RATES = [8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000]


@st.composite
def recordings(draw):
    """Short clips of every shape the AUDIO socket can carry: noise, tones, silence, spikes, NaN, huge values."""
    rate = draw(st.sampled_from(RATES))  # unusable rates are cases of the matrix
    samples = draw(st.integers(60, 600)) * rate // 1000  # 0 and a few samples: cases of the matrix
    channels = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["noise", "tone", "spike", "square", "silence"]))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0, 32767.0, 1e-3, 1e-6, 0.0]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    t = torch.arange(samples) / max(rate, 1)
    base = {
        "noise": torch.randn(samples, generator=g),
        "tone": torch.sin(2 * torch.pi * 220 * t),
        "spike": (torch.arange(samples) == samples // 2).float(),
        "square": torch.sign(torch.sin(2 * torch.pi * 3 * t)),
        "silence": torch.zeros(samples),
    }[kind]
    wav = scale * base[None].repeat(channels, 1)
    specials = draw(st.lists(st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -1.0]), max_size=2))
    for value in specials if samples else []:
        wav[draw(st.integers(0, channels - 1)), draw(st.integers(0, samples - 1))] = value
    return {"waveform": wav[None], "sample_rate": rate}


@FUZZ
@given(audio=recordings())
def test_fuzz_audio(env, audio):
    try:
        out = env.clone_audio(audio)
    except env.Error as e:
        assert "input 'audio'" in str(e), str(e)
        event("refused: " + re.sub(r"[\d.]+", "N", str(e).split(";")[0])[:70])
    else:
        assert_audio(out)
        event("audio")
    env.valid_run()


@FUZZ
@given(text=st.text(max_size=80), transcript=st.text(max_size=40))
def test_fuzz_text(env, text, transcript):
    try:
        out = env.clone_audio(env.reference, transcript=transcript, text=text)
    except env.Error as e:
        assert re.search(r"input 'text'|transcript", str(e)), str(e)
        assert not text.strip() or not transcript.strip()
        event("refused")
    else:
        assert_audio(out)
        event("audio")
    env.valid_run()
