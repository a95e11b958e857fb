"""Word timings from Whisper's cross-attention, independent of the transformers version.

transformers' own word timestamps changed between releases (4.53.3 returns none for a model
whose 5.x result has them), so we align ourselves, the way openai-whisper's ``timing.py``
describes: one teacher-forced decoder pass over the decoded tokens, the cross-attention of the
checkpoint's ``alignment_heads`` z-scored over tokens and median-filtered over time, then a
dynamic-time-warping path from tokens to 20 ms encoder frames. A token starts where the path
first reaches its row.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SECONDS_PER_FRAME = 0.02  # one encoder frame = two 10 ms mel frames
# Languages written without spaces between words: every character is a word.
UNSPACED = {"zh", "ja", "yue", "th", "lo", "my"}


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window of the last axis, reflect-padded so the length is kept."""
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    shape = x.shape
    padded = F.pad(x.reshape(-1, 1, shape[-1]), (width // 2, width // 2), mode="reflect")
    return padded.unfold(-1, width, 1).median(dim=-1).values.reshape(shape)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost`` (rows x cols) from its top-left to bottom-right corner.

    Cells on one anti-diagonal depend only on the two before it, so each diagonal is one vector step.
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    step = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above, 2 from the left
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        k = np.argmin(options, axis=0)
        total[i, j] = cost[i - 1, j - 1] + options[k, np.arange(len(i))]
        step[i, j] = k
    rows, cols = [], []
    i, j = n, m
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        k = step[i, j]
        if k == 0:
            i, j = i - 1, j - 1
        elif k == 1:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1]), np.array(cols[::-1])


def cross_attention(model, encoder_states: torch.Tensor, tokens: list[int], heads: list[list[int]]) -> torch.Tensor:
    """Attention weights (heads, tokens, frames) of the alignment heads, for one teacher-forced pass.

    The weights are recomputed from each hooked layer's own query and key projections, so no
    attention implementation has to return them (sdpa does not).
    """
    layers = model.model.decoder.layers
    wanted = sorted({layer for layer, _ in heads})
    queries: dict[int, torch.Tensor] = {}

    def keep(index):
        def hook(module, args, kwargs):
            queries[index] = args[0] if args else kwargs["hidden_states"]

        return hook

    handles = [layers[i].encoder_attn.register_forward_pre_hook(keep(i), with_kwargs=True) for i in wanted]
    try:
        ids = torch.tensor([tokens], device=encoder_states.device)
        model.model.decoder(input_ids=ids, encoder_hidden_states=encoder_states, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    out = []
    for layer, head in heads:
        attn = layers[layer].encoder_attn
        n_heads = attn.num_heads if hasattr(attn, "num_heads") else model.config.decoder_attention_heads
        q = attn.q_proj(queries[layer][0]).float()
        k = attn.k_proj(encoder_states[0]).float()
        d = q.shape[-1] // n_heads
        q, k = q[:, head * d : (head + 1) * d], k[:, head * d : (head + 1) * d]
        out.append(torch.softmax(q @ k.T * d**-0.5, dim=-1))
    return torch.stack(out)


def token_starts(weights: torch.Tensor, frames: int, filter_width: int) -> np.ndarray:
    """Seconds at which each row's token begins, from (heads, rows, frames) attention weights."""
    w = weights[:, :, :frames]
    std, mean = torch.std_mean(w, dim=-2, keepdim=True, unbiased=False)
    w = median_filter((w - mean) / std.clamp_min(1e-10), filter_width)
    rows, cols = dtw(-w.mean(dim=0).double().numpy())
    first = np.concatenate([[True], np.diff(rows) > 0])
    return cols[first] * SECONDS_PER_FRAME


def split_words(pieces: list[str], language: str | None) -> list[tuple[int, int]]:
    """Token index ranges [start, end) of the words that decoded token pieces make up.

    ``pieces[i]`` is the text that token i completes ("" while a multi-byte character is still
    open). A word starts at a piece beginning with a space, or, in unspaced scripts, at every
    character.
    """
    words: list[tuple[int, int]] = []
    start = 0
    for i, piece in enumerate(pieces):
        if not piece:
            continue
        if i > start and (language in UNSPACED or piece[:1].isspace()) and "".join(pieces[start:i]).strip():
            words.append((start, i))
            start = i
    if start < len(pieces) and "".join(pieces[start:]).strip():
        words.append((start, len(pieces)))
    return words
