"""Bad inputs at every node: each case gives audio or our error naming the input, and the next run works.

The pack is loaded once for the module with one model handle, so the whole matrix loads the tiny
bundle's weights once; clips are short and generations small (max_seconds 0.2: two token groups).
Also here: hypothesis fuzzing of audio and text, the generation guards (pattern, length bound,
out of memory) and concurrency (models and dtypes back to back, threads sharing a handle).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import re
import shutil
import sys
import threading
import time
import weakref
from dataclasses import dataclass

import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests import comfy_stub
from tests.conftest import FIXTURES, PACK, load_pack

TRANSCRIPT = "Please call Stella."
STUBS = {"comfy", "comfy_api", "folder_paths"}
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


class Env:
    """The loaded pack, one model handle, and the nodes called the way ComfyUI calls them."""

    def __init__(self, pack, bundle):
        self.pack, self.nodes, self.bundle = pack, pack.nodes, bundle
        self.Error = pack.nodes.errors.StepAudioNodeError
        self.model = self.load(bundle)
        data, sr = sf.read(FIXTURES / "audio" / "en2_24k.wav", dtype="float32")
        self.speech, self.sr = torch.from_numpy(data), sr
        self.reference = self.audio(1.0)

    def module(self, name: str):
        """A module of the core as the pack imported it (its error classes are the ones the nodes catch)."""
        return importlib.import_module(f"{PACK}.stepaudio_core.{name}")

    def load(self, folder, device="cpu", dtype="fp32"):
        return self.nodes.loader.StepAudioModelLoader.execute(str(folder), device, dtype, "none", False)[0]

    def audio(self, seconds: float, rate: int = 24000, channels: int = 1, batch: int = 1) -> dict:
        """The fixture's speech: ``seconds`` long (looped), resampled, on every channel and batch item."""
        n = int(seconds * self.sr)
        wav = self.speech.repeat(n // len(self.speech) + 1)[:n]
        if rate != self.sr:
            wav = self.module("audio").resample(wav, self.sr, rate)
        gains = torch.linspace(1.0, 0.5, channels)[:, None]
        return {"waveform": (gains * wav)[None].repeat(batch, 1, 1), "sample_rate": rate}

    def encode(self, audio: dict, transcript: str = TRANSCRIPT):
        return self.nodes.encode.StepAudioEncode.execute(self.model, audio, transcript)[0]

    def clone(self, prompt, text="Hello there.", language="none", seed=0, temperature=0.7, max_seconds=0.2):
        clone = self.nodes.clone.StepAudioClone
        return clone.execute(self.model, prompt, text, language, seed, temperature, max_seconds)[0]

    def edit(self, prompt, edit_type, option="none", new_text="", seed=0):
        return self.nodes.edit.StepAudioEdit.execute(self.model, prompt, edit_type, option, new_text, seed)[0]

    def decode(self, tokens, flow_steps=1):
        return self.nodes.decode.StepAudioDecode.execute(self.model, tokens, seed=0, flow_steps=flow_steps)[0]

    def clone_audio(self, audio: dict, transcript: str = TRANSCRIPT, **kwargs) -> dict:
        return self.decode(self.clone(self.encode(audio, transcript), **kwargs))

    def valid_run(self) -> dict:
        """The run every case is followed by: encode (cached), clone two groups, decode."""
        out = self.clone_audio(self.reference)
        assert_audio(out)
        return out


def assert_audio(out: dict, batch: int = 1) -> None:
    wav = out["waveform"]
    assert out["sample_rate"] == 24000
    assert wav.dim() == 3 and wav.shape[:2] == (batch, 1) and wav.shape[-1] > 0
    assert torch.isfinite(wav).all()


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_bundle):
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in STUBS}
    comfy_stub.install(str(tmp_path_factory.mktemp("models")))
    pack = load_pack()
    importlib.import_module(PACK + ".nodes")
    # One thread: on a shared 2-core runner, two threads wait on each other in every tiny op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield Env(pack, tiny_bundle)
    finally:
        torch.set_num_threads(threads)
        for k in [k for k in sys.modules if k.split(".")[0] in STUBS | {PACK}]:
            del sys.modules[k]
        sys.modules.update(saved)


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
    "iterate 0 passes": Case(then=_iterate(0), error=r"edit passes \(iterations\) must be between 1"),
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


def test_prompt_cache_is_bounded_by_size(env, monkeypatch):
    pipeline = env.module("pipeline")
    first = env.encode(env.audio(seconds=2.0))[0]
    monkeypatch.setattr(pipeline, "PROMPT_CACHE_BYTES", int(2.5 * pipeline._nbytes(first)))
    prompts = [env.encode(env.audio(seconds=2.0, channels=c))[0] for c in (2, 3, 4)]
    cached = list(env.model._prompts.values())
    assert cached[-2:] == prompts[-2:] and first not in cached
    assert sum(pipeline._nbytes(p) for p in cached) <= pipeline.PROMPT_CACHE_BYTES


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


# ---------------------------------------------------------------------------- generation guards


def test_output_that_leaves_the_audio_pattern_is_refused(env):
    gen = env.module("lm.generate")
    lm = env.model.component("lm")
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
    model = NeverStops(env.model.component("lm").config)
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


OOM_SITES = {
    # component, its submodule and method that fails, on which call, and the node run
    "generation": ("lm", "", "forward", 2, lambda e, p: e.clone(p)),  # after the prefill: the KV cache is full
    "decoding": ("decoder", "flow", "inference", 1, lambda e, p: e.decode(e.clone(p))),
    "encoding": ("tokenizer", "vq02", "forward", 1, lambda e, p: e.encode(e.audio(seconds=0.8))),
}


@pytest.mark.parametrize("site", OOM_SITES.values(), ids=OOM_SITES.keys())
def test_out_of_memory_frees_what_it_held_and_the_next_run_works(env, site, monkeypatch):
    component, path, method, fail_at, run = site
    module = env.model.component(component)
    if path:
        module = getattr(module, path)
    prompt = env.encode(env.reference)
    caches = []
    lm = env.model.component("lm")
    real_cache = lm.new_cache

    def tracked_cache(*args, **kwargs):
        cache = real_cache(*args, **kwargs)
        caches.append(weakref.ref(cache))
        return cache

    calls = []
    real = getattr(module, method)

    def fail_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(lm, "new_cache", tracked_cache)
    monkeypatch.setattr(module, method, fail_once)
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    monkeypatch.setattr(env.model, "device", torch.device("cuda"))  # as on a GPU; the weights stay on the CPU
    with pytest.raises(env.Error) as raised:
        run(env, prompt)
    message = str(raised.value)
    assert re.match(r"StepAudio (Clone|Decode|Encode): ran out of cuda memory while", message), message
    for option in ("shorter recording", "quantized \\(int8 or nf4\\)", "run on the CPU", "has been freed"):
        assert re.search(option, message), message
    assert isinstance(raised.value, torch.cuda.OutOfMemoryError)  # ComfyUI's OOM type: it unloads models too
    assert emptied == [1]
    gc.collect()
    assert all(ref() is None for ref in caches)  # the failed run's KV cache is gone
    monkeypatch.undo()
    env.valid_run()
    assert run(env, prompt) is not None


def test_memory_advice_on_the_cpu(env, monkeypatch):
    lm = env.model.component("lm")
    calls = []
    real = lm.forward

    def fail_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(lm, "forward", fail_once)
    with pytest.raises(env.Error, match=r"ran out of cpu memory.*shorter recording.*close other programs"):
        env.clone(env.encode(env.reference))
    env.valid_run()


def test_other_runtime_errors_are_not_mistaken_for_memory(env, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(env.model.component("lm"), "forward", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        env.clone(env.encode(env.reference))
    monkeypatch.undo()
    env.valid_run()


# ---------------------------------------------------------------------------- concurrency and state


def _other_model(env, folder):
    """The tiny bundle with other LM weights (seed 1), in ``folder``: a second model for the loader."""
    from safetensors.torch import save_file

    shutil.copytree(env.bundle, folder, copy_function=os.link)  # hard links; the one file replaced is unlinked
    shard = folder / "Step-Audio-EditX" / "model-00001.safetensors"
    shard.unlink()
    weights = env.module("lm.testing").tiny_weights(seed=1)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}, str(shard), metadata={"format": "pt"})
    return folder


def test_two_models_and_dtypes_back_to_back(env, tmp_path):
    """Queued prompts alternating between loader configurations: each keeps its own weights and results."""
    bf16 = env.load(env.bundle, dtype="bf16")
    other = env.load(_other_model(env, tmp_path / "other"))
    assert len({id(env.model), id(bf16), id(other)}) == 3
    assert env.load(env.bundle, dtype="bf16") is bf16 and env.load(env.bundle) is env.model
    outs = {}
    for name, model in [("fp32", env.model), ("bf16", bf16), ("other", other)] * 2:
        prompt = env.nodes.encode.StepAudioEncode.execute(model, env.reference, TRANSCRIPT)[0]
        tokens = env.nodes.clone.StepAudioClone.execute(model, prompt, "Hello there.", "none", 0, 0.7, 0.4)[0]
        audio = env.nodes.decode.StepAudioDecode.execute(model, tokens, 0, 1)[0]
        assert_audio(audio)
        outs.setdefault(name, []).append((tokens[0].tokens, audio["waveform"]))
    for (tokens, wav), (tokens_again, wav_again) in outs.values():
        assert tokens == tokens_again and torch.equal(wav, wav_again)  # each handle repeats itself exactly
    assert outs["fp32"][0][0] != outs["other"][0][0]  # other weights, other tokens: no handle served another's
    assert env.model.component("lm").lm_head.weight.dtype == torch.float32
    assert bf16.component("lm").lm_head.weight.dtype == torch.bfloat16
    assert env.model.component("decoder") is not bf16.component("decoder")


def test_a_failed_run_leaves_no_trace_in_the_next(env):
    import comfy.model_management as mm

    prompt = env.encode(env.reference)
    clean = env.clone(prompt, "One two three.", seed=5, max_seconds=0.5)[0].tokens

    def cancel(done, total):
        if done == 4:
            raise mm.InterruptProcessingException()  # what Cancel does: an exception from the token callback

    with pytest.raises(mm.InterruptProcessingException):
        env.model.clone(prompt[0], "One two three.", seed=5, max_seconds=0.5, on_token=cancel)
    with pytest.raises(env.Error):
        env.edit(prompt, "emotion", "whisper")
    assert env.clone(prompt, "One two three.", seed=5, max_seconds=0.5)[0].tokens == clean


def test_threads_sharing_a_handle_load_each_component_once(env):
    handle = env.module("pipeline").StepAudioEditX(env.bundle, device="cpu", dtype="fp32")
    loads = []
    real = handle._build

    def slow_build(name):
        loads.append(name)
        time.sleep(0.2)  # wide enough for the other thread to arrive while this one loads
        return real(name)

    handle._build = slow_build
    wav = env.reference["waveform"][0]
    results, errors = {}, []

    def work(i, clip):
        try:
            results[i] = handle.encode(clip, 24000, TRANSCRIPT)
        except Exception as e:  # surfaced below: a thread cannot fail the test itself
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, w)) for i, w in enumerate((wav, wav, 0.5 * wav))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(loads) == ["decoder", "tokenizer"]
    assert results[0].tokens == results[1].tokens and len(results) == 3
    assert len(handle._prompts) == 2


def test_no_state_is_shared_between_handles(env):
    """A prompt is plain data: one handle's prompt works in another, and neither handle changes."""
    env.valid_run()
    other = env.module("pipeline").StepAudioEditX(env.bundle, device="cpu", dtype="fp32")
    prompt = env.encode(env.reference)[0]
    before = env.model.loaded()
    tokens = other.clone(prompt, "Hello.", max_seconds=0.2)
    assert other.decode(tokens, flow_steps=1).shape[-1] > 0
    assert env.model.loaded() == before and other.loaded()["lm"] is not before["lm"]
