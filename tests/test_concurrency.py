"""Concurrency and state: models and dtypes back to back, threads sharing a handle, no state shared between handles."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import torch

from tests.node_env import TRANSCRIPT, assert_audio

# ---------------------------------------------------------------------------- concurrency and state


def _other_model(env, folder):
    """The tiny bundle with other LM weights (seed 1), in ``folder``: a second model for the loader."""
    from safetensors.torch import save_file

    shutil.copytree(env.bundle, folder, copy_function=os.link)  # hard links; the one file replaced is unlinked
    shard = folder / "Step-Audio-EditX" / "model-00001.safetensors"
    shard.unlink()
    weights = env.module("testing.lm").tiny_weights(seed=1)
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
    assert env.model.components.lm.lm_head.weight.dtype == torch.float32
    assert bf16.components.lm.lm_head.weight.dtype == torch.bfloat16
    assert env.model.components.decoder is not bf16.components.decoder


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
    real = handle.components._build

    def slow_build(name):
        loads.append(name)
        time.sleep(0.2)  # wide enough for the other thread to arrive while this one loads
        return real(name)

    handle.components._build = slow_build
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
    assert len(handle.prompts) == 2


def test_no_state_is_shared_between_handles(env):
    """A prompt is plain data: one handle's prompt works in another, and neither handle changes."""
    env.valid_run()
    other = env.module("pipeline").StepAudioEditX(env.bundle, device="cpu", dtype="fp32")
    prompt = env.encode(env.reference)[0]
    before = env.model.loaded()
    tokens = other.clone(prompt, "Hello.", max_seconds=0.2)
    assert other.decode(tokens, flow_steps=1).shape[-1] > 0
    assert env.model.loaded() == before and other.loaded()["lm"] is not before["lm"]
