"""Sampling audio tokens from the Step1 LM, as the reference does (docs lm.md 6).

Each step, on the fp32 logits of the last position: the repetition guard (the last id is banned
if it fills more than 10 % of the last 10 ids, prompt included), then temperature 0.7, then
top-k 50, then softmax and one ``torch.multinomial`` draw from a passed ``torch.Generator``.
Generation stops at id 3; the reference then drops the final token, stop id or not.

Structured decoding (on by default) adds one step after the guard: only ids valid for the
current slot of the period-5 [vq02, vq02, vq06, vq06, vq06] pattern stay, plus the stop id at a
group boundary, and the budget's last step can only stop. A well-behaved model already puts
its mass there; a badly behaved (or tiny random) one then still yields a decodable stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import InputError
from .audio_tokens import GROUP, SLOT_IDS, TOKENS_PER_SECOND, VQ02_IDS, codes_from_ids
from .model import Step1ForCausalLM
from .text_tokenizer import EOT

# called after every new token with (tokens so far, token budget); it may raise to cancel
TokenCallback = Callable[[int, int], None]


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
) -> list[int]:
    """New ids after ``prompt_ids``, up to ``max_new_tokens``, ending with ``stop_id`` if it came.

    Structured decoding rounds the budget down to whole groups plus the stop token, and ends
    there with the stop token. A raising ``callback`` leaves the model as it was.
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
    recent = [int(i) for i in prompt_ids[-sampling.repetition_window :]]
    new: list[int] = []
    with torch.inference_mode():
        cache = model.new_cache(len(prompt_ids) + budget)
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=model.device)
        logits = model.prefill(ids, cache, prefill_chunk)
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
) -> list[int]:
    """Mixed audio codes (vq02 0..1023, 1024 + vq06) continuing a clone or edit prompt.

    Like the reference, the final token is dropped (the stop id, or the last token of a run that
    used its whole budget). Output that leaves the slot pattern raises InputError.
    """
    ids = generate_ids(model, prompt_ids, max_new_tokens, sampling, generator, callback, EOT, prefill_chunk)
    return codes_from_ids(ids[:-1])
