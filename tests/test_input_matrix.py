"""Bad inputs at every node: each case gives audio or our error naming the input, and the next run works."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pytest
import torch

from tests.node_env import TRANSCRIPT, assert_audio

# ---------------------------------------------------------------------------- the matrix


def _audio(**kw):
    return lambda e: e.audio(**kw)


def _with(fn):
    """An AUDIO built from the reference speech by ``fn(waveform, sample_rate) -> (waveform, sample_rate)``."""

    def build(e):
        wav, rate = fn(e.reference["waveform"].clone(), e.reference["sample_rate"])
        return {"waveform": wav, "sample_rate": rate}

    return build


def _noise(samples: int, rate: int, scale: float = 0.1):
    return lambda e: {"waveform": scale * torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(1)),
                      "sample_rate": rate}


def _set(wav, index, value):
    wav[0, 0, index] = value
    return wav


@dataclass
class Case:
    """Encode ``audio`` with ``transcript``, then clone (or ``then``); expect audio, or ``error`` (a regex)."""

    audio: object = None  # Env -> AUDIO; None: the reference
    transcript: str = TRANSCRIPT
    then: object = None  # (Env, prompt) -> AUDIO; None: clone two groups and decode
    error: str | None = None
    warns: str | None = None
    batch: int = 1


def _clone(text="Hello there.", **kwargs):
    """Clone ``text`` from the prompt, and decode it."""
    return lambda e, p: e.decode(e.clone(p, text, **kwargs))


def _edit(edit_type, option="none", new_text=""):
    """Edit the prompt, and decode the result."""
    return lambda e, p: e.decode(e.edit(p, edit_type, option, new_text))


def _iterate(iterations=1, mode="audio round trip (reference)"):
    return lambda e, p: e.nodes.iterate.StepAudioEditIterate.execute(
        e.model, p, "emotion", "happy", "", 0, iterations, mode, 1)


LONG_TRANSCRIPT = "Please call Stella. " * 25  # plausible for 30 s of speech

ENCODE_CASES = {
    "empty": Case(
        audio=lambda e: {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000},
        error=r"StepAudio Encode: input 'audio' is empty"),
    "shorter than a vq02 frame": Case(
        audio=_noise(879, 16000), error=r"StepAudio Encode: input 'audio' is 54.9 ms long, shorter than one frame"),
    "exactly one vq02 frame": Case(audio=_noise(880, 16000)),
    "all zeros": Case(
        audio=lambda e: {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000},
        error=r"StepAudio Encode: input 'audio' is silent"),
    "constant offset": Case(
        audio=lambda e: {"waveform": torch.full((1, 2, 16000), 0.3), "sample_rate": 16000},
        error=r"input 'audio' is silent"),
    "below -60 dBFS": Case(audio=_noise(16000, 16000, 1e-5), error=r"'audio' is silent \(its peak is -\d+ dBFS\)"),
    "channels cancel out": Case(audio=_with(lambda w, r: (torch.cat([w, -w], dim=1), r)), error=r"'audio' is silent"),
    "NaN sample": Case(audio=_with(lambda w, r: (_set(w, 100, float("nan")), r)), error=r"input 'audio' contains NaN"),
    "Inf sample": Case(audio=_with(lambda w, r: (_set(w, 5, float("inf")), r)), error=r"'audio' contains NaN or inf"),
    "integer range floats": Case(audio=_with(lambda w, r: (w * 32767, r)), warns=r"'audio' has samples up to .*scaled"),
    "int16 tensor": Case(audio=_with(lambda w, r: ((w * 32767).to(torch.int16), r))),
    "float64 tensor": Case(audio=_with(lambda w, r: (w.double(), r))),
    "8 kHz": Case(audio=_audio(seconds=1.0, rate=8000)),
    "192 kHz": Case(audio=_audio(seconds=1.0, rate=192000)),
    "4 kHz": Case(
        audio=_with(lambda w, r: (w[..., ::6], 4000)),
        error=r"input 'audio' is sampled at 4000 Hz; use a recording sampled between 8000 and"),
    "44101 Hz": Case(
        audio=_with(lambda w, r: (w, 44101)),
        error=r"input 'audio' is sampled at 44101 Hz, an unusual rate.*Resample it to a standard rate"),
    "fractional rate": Case(audio=_with(lambda w, r: (w, 24000.5)), error=r"rate of input 'audio' must be a whole"),
    **{f"{c} channels": Case(audio=_audio(seconds=1.0, channels=c)) for c in (2, 3, 6, 8)},
    "samples by channels": Case(
        audio=_with(lambda w, r: (w.repeat(1, 2, 1).transpose(1, 2), r)),
        error=r"input 'audio' has shape \(24000, 2\).*Transpose it"),
    "no batch axis": Case(audio=_with(lambda w, r: (w[0], r)), error=r"input 'audio' must be a batch of shape"),
    "batch of 0": Case(audio=_with(lambda w, r: (w[:0], r)), error=r"input 'audio' holds no clips"),
    "batch of 2": Case(audio=_audio(seconds=1.0, batch=2), batch=2),
    "batch with a silent clip": Case(
        audio=_with(lambda w, r: (torch.cat([w, 0 * w]), r)),
        error=r"StepAudio Encode: clip 2 of 2 in the batch: input 'audio' is silent"),
    "transcript far too long": Case(transcript="Please call Stella. " * 20, warns=r"'transcript' .* far too long"),
    "transcript far too short": Case(audio=_audio(seconds=12.0), transcript="Hi.", warns=r"'transcript' .* too short"),
    "whitespace transcript, clone": Case(transcript=" \n\t ", error=r"StepAudio Clone: cloning needs the transcript"),
    "whitespace transcript, denoise": Case(transcript="  ", then=_edit("denoise")),
    # Longer than one window is edited in pieces (tests/test_longedit.py); what stays an error is the same.
    "over 30 s, edit without transcript": Case(
        audio=_audio(seconds=31.0), transcript="", then=_edit("emotion", "happy"),
        error=r"StepAudio Edit: the emotion edit needs the transcript of the recording; write it in the Encode"),
    "over 30 s, clone": Case(
        audio=_audio(seconds=31.0), transcript=LONG_TRANSCRIPT,
        warns=r"the reference in input 'prompt' is 31.0 s long.*uses its first 30 s"),
    "over 30 minutes": Case(
        audio=_audio(seconds=1801.0),
        error=r"StepAudio Encode: input 'audio' is 30.0 min long; recordings up to 30 min are accepted.*Cut it"),
}

LANGUAGES = {
    "Mandarin": ("none", "今天天气很好，我们去公园散步吧。"),
    "English": ("none", "The weather is lovely today, let's take a walk."),
    "Japanese": ("Japanese", "今日はいい天気ですね。散歩に行きましょう。"),
    "Korean": ("Korean", "오늘 날씨가 정말 좋네요. 산책하러 갈까요?"),
    "Cantonese": ("Cantonese", "今日天氣好好，我哋去公園行下啦。"),
    "Sichuanese": ("Sichuanese", "今天天气巴适得很，我们去公园耍一哈嘛。"),
}

CLONE_CASES = {
    "empty text": Case(then=_clone(""), error=r"StepAudio Clone: input 'text' is empty; type what"),
    "whitespace text": Case(then=_clone(" \n\t "), error=r"StepAudio Clone: input 'text' is empty"),
    **{f"text in {name}": Case(then=_clone(text, language=lang)) for name, (lang, text) in LANGUAGES.items()},
    "inline tags and pinyin": Case(then=_clone("[Cantonese]我guo4来了 [Laughter] 哈哈")),
    "emoji and control characters": Case(then=_clone("Hi 👋\x00\x07 \u202eolleh ‽")),
    "punctuation only": Case(then=_clone("... ?!")),
    "long text in pieces": Case(then=_clone("This sentence is one of many. " * 25)),
    "unknown language": Case(then=_clone(language="Klingon"), error=r"StepAudio Clone: unknown language tag 'Klingon'"),
    "negative max_seconds": Case(then=_clone(max_seconds=-1.0), error=r"input 'max_seconds' must be above 0"),
    "huge max_seconds": Case(then=_clone(max_seconds=1e9), error=r"input 'max_seconds' must be above 0 and at most"),
    "temperature 0": Case(then=_clone(temperature=0.0), error=r"StepAudio Clone: input 'temperature' must be in"),
    "temperature NaN": Case(then=_clone(temperature=float("nan")), error=r"input 'temperature' must be in"),
    "largest seed, three pieces": Case(then=_clone("A sentence. " * 60, seed=2**63 - 1)),
    "seed past 64 bits": Case(then=_clone(seed=2**64), error=r"StepAudio Clone: input 'seed' must lie between"),
    "seed not a number": Case(then=_clone(seed="7"), error=r"input 'seed' must be a whole number"),
}

EDIT_CASES = {
    "unknown edit type": Case(then=_edit("karaoke"), error=r"StepAudio Edit: unknown edit type 'karaoke'"),
    "option of another type": Case(
        then=_edit("style", "happy"), error=r"StepAudio Edit: 'happy' is not an option of edit type 'style'"),
    "unknown option": Case(then=_edit("speed", "warp 9"), error=r"'warp 9' is not an option of edit type 'speed'"),
    "missing option": Case(then=_edit("emotion", "none"), error=r"edit type 'emotion' needs an option"),
    "no transcript for emotion": Case(
        transcript="", then=_edit("emotion", "sad"), error=r"StepAudio Edit: the emotion edit needs the transcript"),
    "paralinguistic without new_text": Case(
        then=_edit("paralinguistic", new_text="  "), error=r"StepAudio Edit: input 'new_text' is empty"),
    "paralinguistic without a tag": Case(
        then=_edit("paralinguistic", new_text="Please call Stella."),
        warns=r"input 'new_text' of a paralinguistic edit: it has no tag"),
    "option left over on vad": Case(then=_edit("vad", "happy")),
    "iterate 0 passes": Case(then=_iterate(0), error=r"edit passes \(input 'iterations'\) must be between 1"),
    "iterate unknown mode": Case(
        then=_iterate(1, "sideways"), error=r"StepAudio Edit \(iterate\): iteration mode \(input 'mode'\) must be"),
    "iterate a batch": Case(
        audio=_audio(seconds=1.0, batch=2), batch=2, then=_iterate(1), error=r"input 'prompt' holds a batch of 2"),
    "decode with 0 flow steps": Case(
        then=lambda e, p: e.decode(e.clone(p), flow_steps=0),
        error=r"StepAudio Decode: input 'flow_steps' must be between 1 and 100"),
}

LOADER_CASES = {
    "no model folder": (lambda e, tmp: e.load(tmp), r"StepAudio Model Loader: no Step-Audio-EditX/ folder in"),
    "unknown dtype": (lambda e, tmp: e.load(e.bundle, dtype="fp8"), r"StepAudio Model Loader: unknown dtype 'fp8'"),
    "unknown device": (lambda e, tmp: e.load(e.bundle, device="tpu"), r"StepAudio Model Loader: unknown device"),
}


def _run_case(env, case: Case):
    audio = (case.audio or (lambda e: e.reference))(env)
    prompt = env.encode(audio, case.transcript)
    assert len(prompt) == case.batch
    if case.then is not None:
        return case.then(env, prompt)
    return env.decode(env.clone(prompt))


MATRIX = {**ENCODE_CASES, **CLONE_CASES, **EDIT_CASES}


@pytest.mark.parametrize("case", MATRIX.values(), ids=MATRIX.keys())
def test_matrix(env, case, caplog):
    caplog.set_level(logging.WARNING)
    if case.error is None:
        out = _run_case(env, case)
        if isinstance(out, dict):
            assert_audio(out, case.batch)
    else:
        # Our error type, never a bare torch/numpy one (which would fail this test as it is).
        with pytest.raises(env.Error) as raised:
            _run_case(env, case)
        assert re.search(case.error, str(raised.value)), str(raised.value)
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    if case.warns is None:
        assert not warnings, warnings
    else:
        assert re.search(case.warns, warnings), warnings
    env.valid_run()


@pytest.mark.parametrize("make, error", LOADER_CASES.values(), ids=LOADER_CASES.keys())
def test_loader_matrix(env, make, error, tmp_path):
    handles = dict(env.nodes.loader._HANDLES)
    with pytest.raises(env.Error, match=error):
        make(env, tmp_path)
    assert env.nodes.loader._HANDLES == handles  # a failed load leaves the handle cache as it was
    assert env.load(env.bundle) is env.model
    env.valid_run()



def test_an_iteration_whose_result_cannot_be_encoded_says_which_pass(env, monkeypatch):
    silent = lambda tokens, **kwargs: torch.zeros(24000)  # noqa: E731 - a pass that decodes to silence
    monkeypatch.setattr(env.model, "decode", silent)
    with pytest.raises(env.Error, match=r"StepAudio Edit \(iterate\): edit pass 1 produced audio that cannot be edited "
                       r"again \(input 'audio' is silent"):
        env.nodes.iterate.StepAudioEditIterate.execute(
            env.model, env.encode(env.reference), "denoise", "none", "", 0, 2, "audio round trip (reference)", 1)
    monkeypatch.undo()
    env.valid_run()


def test_every_standard_rate_is_accepted(env):
    rates = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000, 384000)
    assert [env.module("validate").check_sample_rate(r) for r in rates] == list(rates)


def test_unknown_paralinguistic_tags_are_named(env, caplog):
    warn = env.module("validate").warn_untagged_paralinguistic
    assert not warn("So [Laughter] funny.")
    assert warn("[Cantonese]So [laugh] funny.")
    assert "its tags [laugh] are not ones the model knows" in caplog.text and "[Laughter]" in caplog.text
