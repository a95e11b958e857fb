"""Edit passes of one recording within the model's window, each pass editing the previous result.

The reference's ``n_edit_iter`` loop: each result is decoded, written as 16-bit audio and
encoded again ("audio"). "tokens" feeds a pass's tokens straight into the next pass's LM prompt
and decodes every pass in the original recording's voice: faster, and not what the reference
does. Recordings longer than a piece run the same passes piece by piece (``longedit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from .audio import pcm16_round_trip
from .errors import InputError, NotEnoughMemoryError
from .prompt import EncodedPrompt, GeneratedTokens
from .vocabulary import render


def iterate_short(
    handle,
    prompt: EncodedPrompt,
    edit_type: str,
    option: str | None,
    *,
    new_text: str | None,
    n_iter: int,
    seed: int,
    mode: str,
    flow_steps: int,
    max_seconds: float | None = None,
    max_piece_seconds: float | None = None,
    on_token=None,
    on_pass: Callable[[int], None] | None = None,
    on_result: Callable[[int, torch.Tensor], None] | None = None,
) -> list[tuple[GeneratedTokens, torch.Tensor]]:
    """``n_iter`` passes through ``handle``'s edit and decode (checked there); (tokens, waveform) of each."""
    results = []
    current = prompt
    for i in range(n_iter):
        if on_pass is not None:
            on_pass(i)
        tokens = handle.edit(
            current, edit_type, option, new_text=new_text, seed=seed + i, on_token=on_token, max_seconds=max_seconds,
            max_piece_seconds=max_piece_seconds,
        )
        if mode == "tokens":
            # The LM edits the previous pass's tokens, but the decoder is conditioned on the
            # original recording, whose tokens and mel belong together.
            tokens = replace(tokens, prompt=prompt)
        wav = handle.decode(tokens, seed=seed, flow_steps=flow_steps)
        results.append((tokens, wav))
        if on_result is not None:
            on_result(i, wav)
        if i + 1 == n_iter:
            break
        if mode == "tokens":
            current = replace(current, tokens=tokens.tokens, text=tokens.text)
            continue
        try:
            current = handle.encode(pcm16_round_trip(wav)[None], handle.sample_rate, tokens.text)
        except NotEnoughMemoryError:
            raise
        except InputError as e:
            raise InputError(
                lambda v, i=i, e=e: f"edit pass {i + 1} produced audio that cannot be edited again "
                f"({render(e, v)}); run fewer passes or try another seed"
            ) from None
    return results
