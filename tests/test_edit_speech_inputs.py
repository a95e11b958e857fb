"""Edit and Edit (iterate) take speech recognition's results: word timings for where to cut, an ASR for empty transcripts."""

from __future__ import annotations

import pytest

from stepaudio_core.transcript import Transcript, WordTiming
from tests.node_env import TRANSCRIPT


class FakeASR:
    """Stands in for StepAudio ASR Loader's recognizer: it hears one sentence, and counts its calls."""

    def __init__(self, text: str):
        self.text, self.calls = text, []

    def transcribe(self, wav, sample_rate, word_timings=True):
        self.calls.append((wav.shape[-1] / sample_rate, word_timings))
        return Transcript(self.text)


def _edit(env, prompt, **speech):
    node = env.nodes.edit.StepAudioEdit
    return node.execute(env.model, prompt, "emotion", "happy", "", 3, 15.0, **speech)[0]


def test_an_asr_fills_an_empty_transcript_of_a_short_recording(env):
    asr = FakeASR("Please call Stella.")
    prompt = env.encode(env.reference, transcript="")
    with pytest.raises(env.Error, match="needs the transcript"):
        _edit(env, prompt)  # without an ASR: the clear error it always gave
    (tokens,) = _edit(env, prompt, asr=asr)
    assert tokens.text == "Please call Stella." and tokens.tokens
    assert asr.calls == [(pytest.approx(prompt[0].seconds), False)]  # the whole recording, once, no word timings


def test_a_typed_transcript_is_never_replaced(env):
    asr = FakeASR("Something else entirely.")
    (tokens,) = _edit(env, env.encode(env.reference, TRANSCRIPT), asr=asr)
    assert tokens.text == TRANSCRIPT and asr.calls == []


def test_word_timings_must_match_the_batch(env):
    prompt = env.encode(env.reference)
    words = (Transcript(TRANSCRIPT, (WordTiming("Please", 0.1, 0.4),)),) * 2
    with pytest.raises(env.Error, match=r"input 'word_timings' holds 2 transcripts for 1 recordings"):
        _edit(env, prompt, word_timings=words)
    (tokens,) = _edit(env, prompt, word_timings=words[:1])  # one per clip: accepted
    assert tokens.tokens


def test_iterate_passes_the_asr_through(env):
    asr = FakeASR("Please call Stella.")
    node = env.nodes.iterate.StepAudioEditIterate
    prompt = env.encode(env.reference, transcript="")
    passes, final, tokens = node.execute(
        env.model, prompt, "emotion", "happy", "", 3, 1, "token space (faster, not the reference)", 1, 15.0, asr=asr
    )
    assert tokens[0].text == "Please call Stella." and len(passes) == 1 and len(asr.calls) == 1
