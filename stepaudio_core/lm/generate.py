"""Sampling audio tokens from the Step1 LM, as the reference does (docs lm.md 6).

Each step, on the fp32 logits of the last position: the repetition guard (the last id is banned
if it fills more than 10 % of the last 10 ids, prompt included), then temperature 0.7, then
top-k 50, then softmax and one ``torch.multinomial`` draw from a passed ``torch.Generator``.
Generation stops at id 3; the reference then drops the final token, stop id or not.

Structured decoding (on by default) adds one step after the guard: only ids valid for the
current slot of the period-5 [vq02, vq02, vq06, vq06, vq06] pattern stay, plus the stop id at a
group boundary, and the budget's last step can only stop. A well-behaved model already puts
its mass there; a badly behaved (or tiny random) one then still yields a decodable stream.

On CUDA the new ids stay on the GPU and are read back eight at a time (``_decode_on_device``),
so the host never waits for the GPU between tokens; the ids, the callbacks and the generator's
final state are those of the per-token loop. A fixed-shape step replayed as a CUDA graph is an
option (``decode_step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..codes import GROUP, SLOT_IDS, TOKENS_PER_SECOND, VQ02_IDS, codes_from_ids
from ..errors import InputError
from .model import StaticDecodeStep, Step1ForCausalLM
from .text_tokenizer import EOT

# called after every new token with (tokens so far, token budget); it may raise to cancel
TokenCallback = Callable[[int, int], None]
# tokens decoded on a CUDA device between two reads of the new ids (generate_ids' check_every)
DEVICE_CHECK_EVERY = 8
DECODE_STEPS = ("plain", "static", "cuda_graph")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_k: int = 50
    greedy: bool = False
    structured: bool = True
    repetition_window: int = 10

    def __post_init__(self):
        if not self.temperature > 0:
            raise InputError(f"temperature must be above 0, not {self.temperature}; use greedy decoding instead of 0")
        if self.top_k < 1 or self.repetition_window < 1:
            raise InputError(
                f"top_k and repetition_window must be at least 1, not {self.top_k} and {self.repetition_window}"
            )


def max_new_tokens_for(seconds: float) -> int:
    """Token budget for up to ``seconds`` of audio: whole groups of five, plus the stop token."""
    if not seconds > 0:
        raise InputError(f"the maximum duration must be positive, not {seconds} s")
    return math.ceil(seconds * TOKENS_PER_SECOND / GROUP) * GROUP + 1


def ban_repeat(scores: torch.Tensor, recent: Sequence[int], window: int = 10) -> torch.Tensor:
    """The reference's repetition guard, in place on (1, vocab) scores."""
    if len(recent) >= window and list(recent[-window:]).count(recent[-1]) / window > 0.1:
        scores[0, recent[-1]] = float("-inf")
    return scores


def warp(scores: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """Temperature then top-k, as transformers' warpers compute them (ties at the k-th value kept)."""
    scores = scores / temperature
    kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][..., -1, None]
    return scores.masked_fill(scores < kth, float("-inf"))


class SlotMasks:
    """Boolean (vocab,) masks of the ids each step of structured decoding may choose."""

    def __init__(self, vocab: int, device: torch.device, stop_id: int = EOT):
        if vocab < SLOT_IDS[-1][1]:
            raise InputError(
                f"structured decoding needs the audio-token ids up to {SLOT_IDS[-1][1] - 1}, but this LM's vocabulary "
                f"has {vocab} ids; it is not a Step-Audio LM. Turn structured decoding off."
            )

        def mask(ranges, stop):
            m = torch.zeros(vocab, dtype=torch.bool, device=device)
            for lo, hi in ranges:
                m[lo:hi] = True
            m[stop_id] = stop
            return m

        self.vq02 = mask([VQ02_IDS], False)
        self.vq02_or_stop = mask([VQ02_IDS], True)
        self.vq06 = mask([SLOT_IDS[2]], False)
        self.stop = mask([], True)

    def allowed(self, n: int, budget: int) -> torch.Tensor:
        """Ids allowed for the token after ``n`` generated ones, out of ``budget``."""
        if n == budget - 1:
            return self.stop
        if n % GROUP == 0:
            return self.vq02_or_stop if n else self.vq02  # no empty output
        return self.vq02 if n % GROUP == 1 else self.vq06


def generate_ids(
    model: Step1ForCausalLM,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    callback: TokenCallback | None = None,
    stop_id: int = EOT,
    prefill_chunk: int = 256,
    check_every: int | None = None,
    decode_step: str = "plain",
) -> list[int]:
    """New ids after ``prompt_ids``, up to ``max_new_tokens``, ending with ``stop_id`` if it came.

    Structured decoding rounds the budget down to whole groups plus the stop token, and ends
    there with the stop token. A raising ``callback`` leaves the model as it was.

    ``check_every`` is how many new tokens stay on the device before they are read back to look
    for the stop id: 1 reads each one (the plain loop); more lets the host queue the next steps
    without waiting for the device (``_decode_on_device``), with the same result. None picks
    ``DEVICE_CHECK_EVERY`` on CUDA and 1 elsewhere (on the CPU reading a token costs nothing).

    ``decode_step`` "plain" runs the model step by step as the prefill does; "static" runs
    ``StaticDecodeStep`` (fixed shapes) and "cuda_graph" replays it as a CUDA graph. Both agree
    with "plain" to rounding, not bit for bit, so a sampled id can differ where two candidates
    tie to the last bit: options for speed, off by default.
    """
    if isinstance(prompt_ids, torch.Tensor):
        prompt_ids = prompt_ids.flatten().tolist()
    prompt_ids = [int(i) for i in prompt_ids]
    if not prompt_ids:
        raise InputError("the LM prompt is empty")
    if max_new_tokens < 1:
        raise InputError(f"the token budget must be at least 1, not {max_new_tokens}")
    if not sampling.greedy and generator is None:
        raise ValueError("sampling needs a torch.Generator (pass one seeded from the user's seed)")
    budget = max_new_tokens
    masks = None
    if sampling.structured:
        budget = (max_new_tokens - 1) // GROUP * GROUP + 1
        if budget < GROUP + 1:
            raise InputError(f"structured decoding needs a budget of at least {GROUP + 1} tokens, not {max_new_tokens}")
        masks = SlotMasks(model.config.vocab_size, model.device, stop_id)
    if len(prompt_ids) + budget > model.config.max_seq_len:
        raise InputError(
            f"the LM prompt ({len(prompt_ids)} tokens) and up to {budget} new tokens exceed the model's window of "
            f"{model.config.max_seq_len} tokens; use a shorter recording, transcript or text"
        )
    if check_every is None:
        check_every = DEVICE_CHECK_EVERY if model.device.type == "cuda" else 1
    if check_every < 1:
        raise ValueError(f"check_every must be at least 1, not {check_every}")
    if decode_step not in DECODE_STEPS:
        raise InputError(f"decode_step must be one of {', '.join(DECODE_STEPS)}, not {decode_step!r}")
    if decode_step == "cuda_graph" and model.device.type != "cuda":
        raise InputError(f"CUDA graphs need the LM on a CUDA GPU; it is on '{model.device}'. Use decode_step 'plain'.")
    recent = [int(i) for i in prompt_ids[-sampling.repetition_window :]]
    new: list[int] = []
    with torch.inference_mode():
        cache = model.new_cache(len(prompt_ids) + budget)
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=model.device)
        logits = model.prefill(ids, cache, prefill_chunk)
        if check_every > 1 or decode_step != "plain":
            if decode_step == "plain":
                step = lambda token: model(token.view(1, 1), cache, last_only=True)[:, -1]  # noqa: E731
            else:
                step = StaticDecodeStep(model, cache, cuda_graph=decode_step == "cuda_graph")
            return _decode_on_device(
                step, logits, recent, budget, masks, sampling, generator, callback, stop_id, check_every
            )
        while len(new) < budget:
            scores = ban_repeat(logits.float(), recent, sampling.repetition_window)
            if masks is not None:
                scores = scores.masked_fill(~masks.allowed(len(new), budget), float("-inf"))
            token = _pick(scores, sampling, generator)
            new.append(token)
            recent = (recent + [token])[-sampling.repetition_window :]
            if callback is not None:
                callback(len(new), budget)
            if token == stop_id or len(new) == budget:
                break
            logits = model(torch.tensor([[token]], device=model.device), cache, last_only=True)[:, -1]
    return new


def _decode_on_device(
    step: Callable[[torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    recent_ids: list[int],
    budget: int,
    masks: SlotMasks | None,
    sampling: Sampling,
    generator: torch.Generator | None,
    callback: TokenCallback | None,
    stop_id: int,
    check_every: int,
) -> list[int]:
    """The loop of ``generate_ids`` with the ids kept on the device, read back ``check_every`` at a time.

    ``step`` maps the last id, a (1,) tensor, to the next logits (1, vocab).

    Each step does what the plain loop does, in tensors: the repetition guard from a device copy
    of the recent ids, the slot mask (chosen by the count, which the host knows), the same draw
    (``_draw``). Steps run past a stop id until the next read; then the ids after the stop are
    dropped, the generator is put back to its state right after the stop's draw, and the
    callback has been called for exactly the ids kept, in order. The extra steps only wrote
    cache rows past the kept ids, and the cache is private to this call.
    """
    device = logits.device
    window = sampling.repetition_window
    vocab_ids = torch.arange(logits.shape[-1], device=device)
    recent = torch.tensor(recent_ids, dtype=torch.long, device=device)
    drawn: list[torch.Tensor] = []
    states: list[torch.Tensor] = []  # the generator's state after each draw of the block not yet read
    kept: list[int] = []
    while True:
        n = len(drawn)
        scores = logits.float()
        if recent.shape[0] >= window:
            scores = _ban_repeat_on_device(scores, recent, window, vocab_ids)
        if masks is not None:
            scores = scores.masked_fill(~masks.allowed(n, budget), float("-inf"))
        token = _draw(scores, sampling, generator).to(device)
        drawn.append(token)
        if not sampling.greedy:
            states.append(generator.get_state())
        recent = torch.cat([recent, token])[-window:]
        if n + 1 == budget or n + 1 - len(kept) == check_every:
            for i, t in enumerate(torch.cat(drawn[len(kept) :]).tolist()):  # the one wait for the device
                if states:
                    generator.set_state(states[i])
                kept.append(t)
                if callback is not None:
                    callback(len(kept), budget)
                if t == stop_id:
                    return kept
            states.clear()
            if len(kept) == budget:
                return kept
        logits = step(token)


def _ban_repeat_on_device(
    scores: torch.Tensor, recent: torch.Tensor, window: int, vocab_ids: torch.Tensor
) -> torch.Tensor:
    """``ban_repeat`` on device tensors: count / window > 0.1 is 10 * count > window for integers."""
    last = recent[-1]
    ban = (recent[-window:] == last).sum() * 10 > window
    return scores.masked_fill((vocab_ids == last) & ban, float("-inf"))


def _draw(scores: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """``_pick`` without reading the id back: a (1,) tensor on the generator's device.

    For one sample, ``torch.multinomial`` on CPU and CUDA draws q ~ Exp(1) with ``exponential_``
    and takes argmax(p / q), after checks that read the probabilities back; this is that draw
    without the checks, so the same generator gives the same id and ends in the same state.
    """
    if sampling.greedy:
        return scores.argmax(dim=-1)
    probs = torch.softmax(warp(scores, sampling.temperature, sampling.top_k), dim=-1).to(generator.device)
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / q).argmax(dim=-1)


def _pick(scores: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    if sampling.greedy:
        return int(scores.argmax(dim=-1)[0])
    probs = torch.softmax(warp(scores, sampling.temperature, sampling.top_k), dim=-1)
    # draw where the generator lives, so a CPU generator reproduces the same seed on any device
    return int(torch.multinomial(probs.to(generator.device), num_samples=1, generator=generator)[0, 0])


def generate_audio_codes(
    model: Step1ForCausalLM,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    callback: TokenCallback | None = None,
    prefill_chunk: int = 256,
    check_every: int | None = None,
    decode_step: str = "plain",
) -> list[int]:
    """Mixed audio codes (vq02 0..1023, 1024 + vq06) continuing a clone or edit prompt.

    Like the reference, the final token is dropped (the stop id, or the last token of a run that
    used its whole budget). Output that leaves the slot pattern raises InputError.
    """
    ids = generate_ids(model, prompt_ids, max_new_tokens, sampling, generator, callback, EOT, prefill_chunk, check_every,
                       decode_step)
    return codes_from_ids(ids[:-1])
