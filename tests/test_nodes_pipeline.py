"""Every node on a tiny model folder: Encode -> Clone/Edit/Iterate -> Decode, progress, cancel, memory."""

import pytest
import soundfile as sf
import torch

from tests.conftest import FIXTURES


@pytest.fixture
def model(pack, tiny_bundle):
    return pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]


@pytest.fixture
def reference():
    data, sr = sf.read(FIXTURES / "audio" / "en2_24k.wav", dtype="float32")
    data = data[: int(1.5 * sr)]  # short: a tiny random LM always uses its whole token budget
    stereo = torch.stack([torch.from_numpy(data), 0.5 * torch.from_numpy(data)])
    return {"waveform": stereo[None], "sample_rate": sr}, "Please call Stella and bring the things."


def _encode(pack, model, reference):
    audio, text = reference
    return pack.nodes.encode.StepAudioEncode.execute(model, audio, text)[0]


def test_encode_gives_one_prompt_per_clip_and_caches(pack, model, reference, monkeypatch):
    prompt = _encode(pack, model, reference)
    assert len(prompt) == 1
    p = prompt[0]
    assert len(p.tokens) % 5 == 0 and len(p.tokens) > 0
    assert p.mel.shape[-1] == 80 and p.speaker.shape == (1, 192) and p.speaker_id.startswith("clone_")
    calls = []
    tokenizer = model.components.tokenizer
    monkeypatch.setattr(type(tokenizer), "encode", lambda *a, **k: calls.append(1))
    again = _encode(pack, model, reference)
    assert again[0] is p and calls == []  # served from the cache: no model work


def test_clone_then_decode(pack, model, reference, comfy):
    prompt = _encode(pack, model, reference)
    tokens = pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hello there, how are you?", "none", 3, 0.7, 4.0)[0]
    t = tokens[0]
    assert len(t.pieces) == 1 and 0 < len(t.tokens) <= 170 and len(t.tokens) % 5 == 0  # 4 s: 34 groups at most
    assert comfy.progress and comfy.progress[-1][0] <= comfy.progress[-1][1]
    audio = pack.nodes.decode.StepAudioDecode.execute(model, tokens, seed=0, flow_steps=2)[0]
    assert audio["sample_rate"] == 24000
    assert audio["waveform"].shape == (1, 1, len(t.tokens) // 5 * 3 * 2 * 480)
    same = pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hello there, how are you?", "none", 3, 0.7, 4.0)[0]
    assert same[0].tokens == t.tokens


def test_long_text_is_cloned_in_pieces_and_joined(pack, model, reference):
    prompt = _encode(pack, model, reference)
    text = "This is one sentence of a long text. " * 12
    tokens = pack.nodes.clone.StepAudioClone.execute(model, prompt, text, "none", 0, 0.7, 1.0)[0]
    assert len(tokens[0].pieces) == 2
    audio = pack.nodes.decode.StepAudioDecode.execute(model, tokens, seed=0, flow_steps=1)[0]
    pieces = [len(p) // 5 * 0.12 for p in tokens[0].pieces]
    assert audio["waveform"].shape[-1] == round(sum(pieces) * 24000) - int(0.05 * 24000)


def test_edit_types_and_errors(pack, model, reference):
    prompt = _encode(pack, model, reference)
    edit = pack.nodes.edit.StepAudioEdit
    out = edit.execute(model, prompt, "emotion", "happy", "", 0)[0]
    assert out[0].text == prompt[0].text and out[0].prompt is prompt[0]
    assert edit.execute(model, prompt, "denoise", "none", "", 0)[0][0].tokens
    para = edit.execute(model, prompt, "paralinguistic", "none", "Please [Laughter] call Stella.", 0)[0][0]
    assert para.text == "Please [Laughter] call Stella."
    err = pack.nodes.errors.StepAudioNodeError
    with pytest.raises(err, match="StepAudio Edit: 'whisper' is not an option of edit type 'emotion'"):
        edit.execute(model, prompt, "emotion", "whisper", "", 0)
    with pytest.raises(err, match="needs the new text"):
        edit.execute(model, prompt, "paralinguistic", "none", "  ", 0)


@pytest.mark.parametrize("mode", ["audio round trip (reference)", "token space (faster, not the reference)"])
def test_iterate_returns_every_pass(pack, model, reference, mode):
    prompt = _encode(pack, model, reference)
    passes, final, tokens = pack.nodes.iterate.StepAudioEditIterate.execute(
        model, prompt, "style", "whisper", "", 1, 2, mode, 1
    ).args
    assert len(passes) == 2 and final is passes[-1]
    assert all(a["sample_rate"] == 24000 and a["waveform"].shape[:2] == (1, 1) for a in passes)
    assert tokens[0].text == prompt[0].text
    if mode.startswith("token"):
        assert tokens[0].prompt is prompt[0]  # every pass decodes in the original recording's voice


def test_cancel_stops_generation_within_a_token_and_the_next_run_works(pack, model, reference, comfy, monkeypatch):
    prompt = _encode(pack, model, reference)
    mm = __import__("comfy.model_management", fromlist=["x"])
    seen = []
    real = pack.nodes.progress.TokenProgress.__call__

    def press_cancel(self, done, total):
        seen.append(done)
        if done == 7:
            comfy.interrupted = True
        real(self, done, total)

    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", press_cancel)
    with pytest.raises(mm.InterruptProcessingException):
        pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hello there.", "none", 0, 0.7, 4.0)
    assert seen[-1] == 7
    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", real)
    assert pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hello there.", "none", 0, 0.7, 4.0)[0][0].tokens


def test_unload_models_frees_our_memory(pack, model, reference):
    import comfy.model_management as mm

    prompt = _encode(pack, model, reference)
    pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hi.", "none", 0, 0.7, 1.0)
    placer = model.components.placer
    assert set(placer.patchers) == {"tokenizer", "decoder", "lm"}
    assert placer.loaded_bytes() > 0
    mm.unload_all_models()
    assert placer.loaded_bytes() == 0
    # and the next run loads again
    assert pack.nodes.clone.StepAudioClone.execute(model, prompt, "Hi.", "none", 0, 0.7, 1.0)[0][0].tokens
    assert placer.loaded_bytes() > 0
