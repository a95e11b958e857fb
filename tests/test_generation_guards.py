"""Generation guards: output outside the audio-token pattern is refused, every generation ends at its budget."""

from __future__ import annotations

import pytest
import torch

# ---------------------------------------------------------------------------- generation guards


def test_output_that_leaves_the_audio_pattern_is_refused(env):
    gen = env.module("lm.generate")
    lm = env.model.components.lm
    ids = list(range(100, 160))
    with pytest.raises(env.module("errors").InputError, match="not a well-formed audio-token stream"):
        gen.generate_audio_codes(lm, ids, 20, gen.Sampling(structured=False), torch.Generator().manual_seed(0))
    codes = gen.generate_audio_codes(lm, ids, 20, gen.Sampling(), torch.Generator().manual_seed(0))
    assert len(codes) == 15  # structured: three whole groups, then the forced stop (dropped)


class NeverStops(torch.nn.Module):
    """An LM stand-in that always prefers the same vq02 id: left alone it would never stop."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def device(self):
        return torch.device("cpu")

    def new_cache(self, capacity):
        return None

    def forward(self, ids, cache, last_only=True):
        logits = torch.zeros(1, ids.shape[1], self.config.vocab_size)
        logits[..., 65536 + 7] = 10.0
        return logits

    def prefill(self, ids, cache, chunk):
        return self(ids, cache)[:, -1]


def test_generation_that_never_stops_ends_at_its_budget(env):
    gen = env.module("lm.generate")
    model = NeverStops(env.model.components.lm.config)
    free = gen.generate_ids(model, [1, 2], 23, gen.Sampling(greedy=True, structured=False))
    assert len(free) == 23 and 3 not in free
    structured = gen.generate_ids(model, [1, 2], 23, gen.Sampling(greedy=True))
    assert len(structured) == 21 and structured[-1] == 3  # whole groups, then the stop the last step forces


def test_every_generation_is_bounded_by_its_expected_duration(env, monkeypatch):
    gen = env.module("lm.generate")
    budgets = []

    def record(lm, ids, max_new_tokens, *args):
        budgets.append(max_new_tokens)
        return [0, 0, 1024, 1024, 1024]

    monkeypatch.setattr(gen, "generate_audio_codes", record)
    prompt = env.encode(env.reference)[0]
    env.model.clone(prompt, "Hi.")
    env.model.clone(prompt, "Hi.", max_seconds=2.0)
    env.model.clone(prompt, "word " * 200)  # pieces of 300 spoken units: 3 s + 50 s each
    env.model.edit(prompt, "emotion", "happy")
    long = env.encode(env.audio(seconds=30.0), "Please call Stella. " * 25)[0]
    env.model.edit(long, "speed", "more slower", max_piece_seconds=30.0)  # one piece: the whole window
    seconds = [3 + 3 / 6, 2.0, 3 + 300 / 6, 2.5 * 1.0 + 5, 30.0]  # an edit stays within the 30 s window
    expected = [gen.max_new_tokens_for(s) for s in seconds]
    assert budgets[:3] + budgets[-2:] == expected, budgets
    assert max(budgets) <= gen.max_new_tokens_for(90.0)


def test_a_real_generation_stays_within_its_budget(env):
    prompt = env.encode(env.reference)[0]
    tokens = env.model.clone(prompt, "Hi.", max_seconds=0.5)
    assert 0 < len(tokens.tokens) <= env.module("lm.generate").max_new_tokens_for(0.5) - 1
