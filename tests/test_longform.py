"""Long-form text splitting and joining."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stepaudio_core.longform import MAX_UNITS, crossfade_join, split_text, spoken_units


def test_short_text_is_one_piece():
    assert split_text("  Hello there.  ") == ["Hello there."]
    assert split_text("   ") == []


def test_splits_at_sentence_ends_and_packs_sentences():
    sentence = "This sentence has exactly fifty-some characters ok. "
    text = sentence * 20
    pieces = split_text(text, max_units=200)
    assert len(pieces) > 1
    assert all(p.endswith(".") for p in pieces)
    assert all(spoken_units(p) <= 200 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_cjk_punctuation_and_weight():
    text = "今天天气很好。我们去公园散步吧！你觉得怎么样？" * 10
    pieces = split_text(text, max_units=60)
    assert len(pieces) > 1
    assert all(p[-1] in "。！？" for p in pieces)
    assert "".join(pieces) == text


def test_a_sentence_without_breaks_is_still_cut_within_budget():
    text = "word " * 400
    pieces = split_text(text, max_units=100)
    assert all(spoken_units(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == text.split()


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab cd.,!?。，你好\n")), max_size=1500))
def test_no_text_is_lost_and_every_piece_fits(text):
    pieces = split_text(text, max_units=50)
    assert all(spoken_units(p) <= 50 for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())
    if spoken_units(text) <= MAX_UNITS:
        assert len(split_text(text)) <= 1


def test_crossfade_keeps_length_and_continuity():
    a, b = torch.ones(1000), torch.ones(800)
    out = crossfade_join([a, b], sample_rate=1000, fade_seconds=0.1)
    assert out.shape == (1000 + 800 - 100,)
    assert torch.allclose(out[:900], torch.ones(900))  # equal-power fade of two equal signals stays >= 1
    assert out.max() <= 2**0.5 + 1e-6
    assert crossfade_join([a], 1000).shape == a.shape
