"""Running out of memory in any model call frees what the call held, says what to do, and the next run works."""

from __future__ import annotations

import gc
import re
import weakref

import pytest
import torch

OOM_SITES = {
    # component, its submodule and method that fails, on which call, and the node run
    "generation": ("lm", "", "forward", 2, lambda e, p: e.clone(p)),  # after the prefill: the KV cache is full
    "decoding": ("decoder", "flow", "inference", 1, lambda e, p: e.decode(e.clone(p))),
    "encoding": ("tokenizer", "vq02", "forward", 1, lambda e, p: e.encode(e.audio(seconds=0.8))),
}


@pytest.mark.parametrize("site", OOM_SITES.values(), ids=OOM_SITES.keys())
def test_out_of_memory_frees_what_it_held_and_the_next_run_works(env, site, monkeypatch):
    component, path, method, fail_at, run = site
    module = getattr(env.model.components, component)
    if path:
        module = getattr(module, path)
    prompt = env.encode(env.reference)
    caches = []
    lm = env.model.components.lm
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
    monkeypatch.setattr(env.model.components, "device", torch.device("cuda"))  # as on a GPU; the weights stay on the CPU
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
    lm = env.model.components.lm
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

    monkeypatch.setattr(env.model.components.lm, "forward", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        env.clone(env.encode(env.reference))
    monkeypatch.undo()
    env.valid_run()
