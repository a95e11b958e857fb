"""The LM's fast paths give what the plain paths give: the device-side decode loop (ids read back a
block at a time) against the per-token loop, its draw against torch.multinomial, its repetition
guard against the list one; the static decode step (and its CUDA graph, where there is a GPU)
against the plain step; and the KV cache is sized by the request. No timing here: speed is
measured by bench/lm.py and bench/pipeline.py."""

from __future__ import annotations

import random

import pytest
import torch

from stepaudio_core.edits import EDIT_TYPES
from stepaudio_core.errors import InputError
from stepaudio_core.lm.generate import (
    Sampling,
    _ban_repeat_on_device,
    _draw,
    ban_repeat,
    generate_audio_codes,
    generate_ids,
    max_new_tokens_for,
    warp,
)
from stepaudio_core.lm.load import load_step1
from stepaudio_core.lm.model import StaticDecodeStep
from stepaudio_core.lm.prompts import edit_prompt_ids
from stepaudio_core.lm.text_tokenizer import TextTokenizer
from stepaudio_core.testing.lm import write_tiny_lm
from tests.lm_fixtures import golden, model  # noqa: F401 - pytest fixtures
from tests.paths import FIXTURES

LM = FIXTURES / "lm"
EXACT = Sampling(structured=False)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_tiny_lm(tmp_path_factory.mktemp("models"))
    return load_step1(folder, dtype=torch.float32), TextTokenizer(folder / "tokenizer.model")


def _prompt(golden) -> list[int]:
    return golden["input_ids"][0].tolist()


def _run(model, prompt, budget, sampling, seed, check_every, stop_id=3, cancel_at=None):
    """(ids, callback ticks, generator state at the end, the exception type if cancelled)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    ticks: list[tuple[int, int]] = []

    def callback(done, total):
        ticks.append((done, total))
        if done == cancel_at:
            raise KeyboardInterrupt

    try:
        ids = generate_ids(model, prompt, budget, sampling, generator, callback, stop_id, check_every=check_every)
    except KeyboardInterrupt:
        return None, ticks, generator.get_state(), KeyboardInterrupt
    return ids, ticks, generator.get_state(), None


def _same(a, b):
    assert a[0] == b[0] and a[1] == b[1] and a[3] is b[3]
    assert torch.equal(a[2], b[2]), "the generators ended in different states"


def test_draw_equals_multinomial_and_consumes_the_generator_alike():
    for seed in range(40):
        g = torch.Generator().manual_seed(1000 + seed)
        scores = 4 * torch.randn(1, 3000, generator=g)
        scores[0, torch.randperm(3000, generator=g)[: 2000 + seed]] = float("-inf")
        a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(3):
            probs = torch.softmax(warp(scores, 0.7, 50), dim=-1)
            expected = torch.multinomial(probs, 1, generator=a)[0, 0].item()
            assert _draw(scores, Sampling(), b).item() == expected
        assert torch.equal(a.get_state(), b.get_state())
    greedy = torch.randn(1, 100, generator=torch.Generator().manual_seed(0))
    assert _draw(greedy, Sampling(greedy=True), None).item() == greedy.argmax().item()


def test_device_repetition_guard_equals_the_list_guard():
    rng = random.Random(0)
    vocab_ids = torch.arange(8)
    for _ in range(400):
        window = rng.randint(1, 25)
        recent = [rng.randrange(3) if rng.random() < 0.5 else rng.randrange(8) for _ in range(window)]
        scores = torch.randn(1, 8)
        expected = ban_repeat(scores.clone(), recent, window)
        ours = _ban_repeat_on_device(scores, torch.tensor(recent), window, vocab_ids)
        assert torch.equal(ours, expected), (window, recent)


@pytest.mark.parity
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("check_every", [2, 3, 8, 64])
def test_block_decoding_equals_the_plain_loop_on_the_reference_fixture(model, golden, device, check_every):
    model = model.to(device)
    prompt = _prompt(golden)
    for sampling in (EXACT, Sampling(greedy=True, structured=False)):
        plain = _run(model, prompt, 24, sampling, 0, 1)
        if device == "cpu":  # the reference drew from a CPU generator
            assert plain[0] == golden["greedy.new_tokens" if sampling.greedy else "sample.new_tokens"][0].tolist()
        _same(_run(model, prompt, 24, sampling, 0, check_every), plain)
        # a stop in the middle of a block: the id the plain loop drew 5th acts as the stop id
        stop = plain[0][4]
        stopped = _run(model, prompt, 24, sampling, 0, 1, stop_id=stop)
        assert stopped[0][-1] == stop and len(stopped[0]) <= 5
        _same(_run(model, prompt, 24, sampling, 0, check_every, stop_id=stop), stopped)
    model.to("cpu")


@pytest.mark.parametrize("check_every", [3, 8])
def test_block_decoding_equals_the_plain_loop_with_structured_decoding(tiny, check_every):
    model, tok = tiny
    prompt = edit_prompt_ids(tok, EDIT_TYPES["emotion"], "happy", "Hello there", [1, 2, 1030, 1031, 1032] * 3)
    budget = max_new_tokens_for(0.5)
    for seed in range(6):
        plain = _run(model, prompt, budget, Sampling(), seed, 1)
        _same(_run(model, prompt, budget, Sampling(), seed, check_every), plain)
    ids = generate_ids(model, prompt, budget, Sampling(), torch.Generator().manual_seed(0), check_every=1)
    stop = ids[5]  # the vq02 id drawn at the second group's start acts as the stop id: a stop mid-block
    stopped_early = 0
    for seed in range(3):
        plain = _run(model, prompt, budget, Sampling(), seed, 1, stop_id=stop)
        stopped_early += len(plain[0]) < budget
        _same(_run(model, prompt, budget, Sampling(), seed, check_every, stop_id=stop), plain)
    assert stopped_early
    codes = generate_audio_codes(model, prompt, budget, generator=torch.Generator().manual_seed(1))
    assert codes == generate_audio_codes(model, prompt, budget, generator=torch.Generator().manual_seed(1))


def test_cancel_inside_a_block_stops_at_the_same_token_with_the_same_generator(model, golden):
    prompt = _prompt(golden)
    plain = _run(model, prompt, 24, EXACT, 3, 1, cancel_at=5)
    assert plain[1][-1] == (5, 24) and plain[3] is KeyboardInterrupt
    _same(_run(model, prompt, 24, EXACT, 3, 8, cancel_at=5), plain)
    # the model is usable afterwards, and gives what it gave before
    assert _run(model, prompt, 24, EXACT, 3, 8)[0] == _run(model, prompt, 24, EXACT, 3, 1)[0]


def test_kv_cache_is_sized_by_the_request(tiny, monkeypatch):
    model, tok = tiny
    prompt = edit_prompt_ids(tok, EDIT_TYPES["style"], "whisper", "Hi there", [0, 1, 1024, 1025, 1026] * 4)
    sizes = []
    new_cache = model.new_cache
    monkeypatch.setattr(model, "new_cache", lambda capacity, *a, **k: sizes.append(capacity) or new_cache(capacity))
    budget = max_new_tokens_for(1.0)
    generate_audio_codes(model, prompt, budget, generator=torch.Generator().manual_seed(0))
    assert sizes == [len(prompt) + budget]
    assert budget < model.config.max_seq_len // 100


@pytest.mark.parity
def test_static_step_agrees_with_the_plain_step(model, golden):
    seq = golden["greedy.sequences"]
    P = golden["input_ids"].shape[1]
    worst = 0.0
    with torch.inference_mode():
        plain_cache, static_cache = model.new_cache(seq.shape[1] + 3), model.new_cache(seq.shape[1] + 3)
        model.prefill(seq[:, :P], plain_cache)
        model.prefill(seq[:, :P], static_cache)
        step = StaticDecodeStep(model, static_cache)
        for t in range(P, seq.shape[1]):
            a = model(seq[:, t : t + 1], plain_cache, last_only=True)[:, -1]
            b = step(seq[0, t : t + 1])
            worst = max(worst, (a - b).abs().max().item())
        for layer in range(len(static_cache.k)):  # the same keys and values were written, and only those
            # Keys (up to ~4) from the same projection, only laid out differently. Worst seen: 1.5e-7 (MKL AVX2).
            assert (static_cache.k[layer] - plain_cache.k[layer]).abs().max().item() <= 1e-5
            assert static_cache.k[layer][:, :, seq.shape[1] :].abs().max().item() == 0
    print("static vs plain step logits max|diff|", worst)
    assert worst <= 1e-4  # test_lm_model's TOL (13 ulps of the logits' 64). Worst seen: 7.6e-6 (MKL AVX2).


@pytest.mark.parity
@pytest.mark.parametrize("check_every", [1, 8])
def test_static_decoding_reproduces_the_reference_tokens(model, golden, check_every):
    prompt = _prompt(golden)
    greedy = generate_ids(model, prompt, 24, Sampling(greedy=True, structured=False), check_every=check_every,
                          decode_step="static")
    assert greedy == golden["greedy.new_tokens"][0].tolist()
    sampled = generate_ids(model, prompt, 24, EXACT, torch.Generator().manual_seed(0), check_every=check_every,
                           decode_step="static")
    assert sampled == golden["sample.new_tokens"][0].tolist()


def test_static_step_refuses_a_full_cache_and_graphs_off_cuda(model, golden):
    ids = golden["input_ids"]
    with torch.inference_mode():
        cache = model.new_cache(ids.shape[1] + 1)
        model.prefill(ids, cache)
        step = StaticDecodeStep(model, cache)
        step(ids[0, -1:])
        with pytest.raises(ValueError, match="full"):
            step(ids[0, -1:])
    if model.device.type != "cuda":
        with pytest.raises(InputError, match="CUDA graphs"):
            generate_ids(model, _prompt(golden), 8, Sampling(greedy=True, structured=False), decode_step="cuda_graph")
    with pytest.raises(InputError, match="decode_step"):
        generate_ids(model, _prompt(golden), 8, Sampling(greedy=True, structured=False), decode_step="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_decoding_equals_the_static_step_and_the_reference(model, golden):
    model = model.to("cuda")
    try:
        prompt = _prompt(golden)
        greedy = Sampling(greedy=True, structured=False)
        graph = generate_ids(model, prompt, 24, greedy, decode_step="cuda_graph")
        assert graph == generate_ids(model, prompt, 24, greedy, decode_step="static")
        assert graph == golden["greedy.new_tokens"][0].tolist()
        g1, g2 = torch.Generator("cuda").manual_seed(0), torch.Generator("cuda").manual_seed(0)
        a = generate_ids(model, prompt, 24, EXACT, g1, decode_step="cuda_graph")
        assert a == generate_ids(model, prompt, 24, EXACT, g2, decode_step="static")
        assert torch.equal(g1.get_state(), g2.get_state())
    finally:
        model.to("cpu")
