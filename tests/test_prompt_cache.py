"""The prompt cache keeps encoded prompts by content within its count and byte bounds."""

from __future__ import annotations


def test_prompt_cache_is_bounded_by_size(env, monkeypatch):
    nbytes = env.module("prompt_cache").prompt_nbytes
    first = env.encode(env.audio(seconds=2.0))[0]
    monkeypatch.setattr(env.model.prompts, "max_bytes", int(2.5 * nbytes(first)))
    prompts = [env.encode(env.audio(seconds=2.0, channels=c))[0] for c in (2, 3, 4)]
    cached = env.model.prompts.prompts()
    assert cached[-2:] == prompts[-2:] and first not in cached
    assert env.model.prompts.nbytes <= env.model.prompts.max_bytes
