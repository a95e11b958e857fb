"""The streaming encoder of FunASR's Paraformer (``SANMEncoderChunkOpt``), as vq02 runs it.

SAN-M layers: pre-norm self-attention whose values also feed an FSMN memory (a depthwise
convolution over time), plus a ReLU feed-forward. The tokenizer runs it in 240 ms chunks with
chunk_size (0, 4, 5) and a look-back of 4 chunks:

- every chunk brings 4 LFR frames (the last one 1..4), scaled by sqrt(d) and given sinusoidal
  positions counted from 1 over the whole utterance;
- the 5 frames before it are prepended (zeros before the start), giving a window of 9;
- in every layer, the window's queries attend to its own keys plus the keys of the first 4
  window positions of each of the previous 4 windows, as computed in those windows (the K/V
  cache); the FSMN sees the current window only;
- the chunk's output is the last 4 rows of its window.

``forward_chunk`` is that loop. Because window c at layer l needs only layer l of windows
c-4..c-1, all windows can instead go through the stack together, one layer at a time
(``forward``): the same arithmetic in another order. Module names equal the ``encoder.*`` keys
of the released ``model.pt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

STEP = 4  # LFR frames per chunk (chunk_size[1])
RIGHT = 5  # window rows left out of the K/V cache (chunk_size[2]); with chunk_size[0] = 0 also the overlap
LOOK_BACK = 4  # chunks of keys kept in the cache (encoder_chunk_look_back)


@dataclass(frozen=True)
class ParaformerConfig:
    """``encoder_conf`` of config.yaml; the defaults are the released model's."""

    input_size: int = 560
    output_size: int = 512
    attention_heads: int = 4
    linear_units: int = 2048
    num_blocks: int = 50
    kernel_size: int = 11
    sanm_shfit: int = 0  # sic, FunASR's spelling


def positions(start: int, count: int, depth: int) -> torch.Tensor:
    """``StreamSinusoidalPositionEncoder``: (count, depth) float32 for positions start+1 …, sin half then cos half."""
    pos = torch.arange(start + 1, start + count + 1, dtype=torch.float32)
    step = torch.log(torch.tensor([10000.0])) / (depth / 2 - 1)
    inv = torch.exp(torch.arange(depth // 2, dtype=torch.float32) * -step)
    t = pos[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class LayerNorm(nn.LayerNorm):
    def __init__(self, size: int):
        super().__init__(size, eps=1e-12)


class SANMAttention(nn.Module):
    def __init__(self, n_head: int, in_size: int, size: int, kernel_size: int, shift: int):
        super().__init__()
        self.n_head, self.d_k = n_head, size // n_head
        self.linear_out = nn.Linear(size, size)
        self.linear_q_k_v = nn.Linear(in_size, 3 * size)
        self.fsmn_block = nn.Conv1d(size, size, kernel_size, groups=size, bias=False)
        left = (kernel_size - 1) // 2 + shift
        self.pad = (left, kernel_size - 1 - left)

    def forward(self, x, past=None, key_mask=None, row_mask=None):
        """x (B, T, in) -> (out (B, T, size), k (B, H, T, d_k), v (B, H, T, d_k)).

        ``past(k, v)`` returns the cached keys and values (B, H, P, d_k) to put in front of
        this window's own; ``key_mask`` (B, 1, 1, P + T) marks the usable keys and ``row_mask``
        (B, T, 1) the real rows (both only for the padded windows of the batched path).
        """
        b, t, _ = x.shape
        q, k, v = self.linear_q_k_v(x).chunk(3, dim=-1)
        q, k_h, v_h = (y.reshape(b, t, self.n_head, self.d_k).transpose(1, 2) for y in (q, k, v))
        if row_mask is not None:
            v = v * row_mask
        memory = self.fsmn_block(F.pad(v.transpose(1, 2), self.pad)).transpose(1, 2) + v
        keys, values = k_h, v_h
        if past is not None:
            past_k, past_v = past(k_h, v_h)
            keys, values = torch.cat([past_k, k_h], dim=2), torch.cat([past_v, v_h], dim=2)
        scores = torch.matmul(q * self.d_k**-0.5, keys.transpose(-2, -1))
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask, float("-inf"))
        att = torch.matmul(torch.softmax(scores, dim=-1), values).transpose(1, 2).reshape(b, t, -1)
        return self.linear_out(att) + memory, k_h, v_h


class FeedForward(nn.Module):
    def __init__(self, size: int, units: int):
        super().__init__()
        self.w_1 = nn.Linear(size, units)
        self.w_2 = nn.Linear(units, size)

    def forward(self, x):
        return self.w_2(torch.relu(self.w_1(x)))


class SANMLayer(nn.Module):
    def __init__(self, in_size: int, cfg: ParaformerConfig):
        super().__init__()
        size = cfg.output_size
        self.self_attn = SANMAttention(cfg.attention_heads, in_size, size, cfg.kernel_size, cfg.sanm_shfit)
        self.feed_forward = FeedForward(size, cfg.linear_units)
        self.norm1 = LayerNorm(in_size)
        self.norm2 = LayerNorm(size)
        self.residual = in_size == size  # the first layer changes width: no residual around its attention

    def forward(self, x, past=None, key_mask=None, row_mask=None):
        att, k, v = self.self_attn(self.norm1(x), past, key_mask, row_mask)
        x = x + att if self.residual else att
        return x + self.feed_forward(self.norm2(x)), k, v


@dataclass
class EncoderStream:
    """What ``forward_chunk`` carries from chunk to chunk (the reference's cache["encoder"])."""

    start: int = 0
    overlap: torch.Tensor | None = None
    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)


class ParaformerEncoder(nn.Module):
    def __init__(self, cfg: ParaformerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoders0 = nn.ModuleList([SANMLayer(cfg.input_size, cfg)])
        self.encoders = nn.ModuleList([SANMLayer(cfg.output_size, cfg) for _ in range(cfg.num_blocks - 1)])
        self.after_norm = LayerNorm(cfg.output_size)

    @property
    def layers(self) -> list[SANMLayer]:
        return [*self.encoders0, *self.encoders]

    def embed(self, feats: torch.Tensor, start: int) -> torch.Tensor:
        """(…, T, input_size) CMVN-ed LFR frames -> scaled, with positions start+1 … start+T."""
        pe = positions(start, feats.shape[-2], feats.shape[-1]).to(feats.device, feats.dtype)
        return feats * self.cfg.output_size**0.5 + pe

    def forward_chunk(self, feats: torch.Tensor, state: EncoderStream) -> torch.Tensor:
        """One chunk (1, T, input_size), T <= 4 -> its T output rows (1, T, output_size); updates ``state``."""
        t = feats.shape[1]
        x = self.embed(feats, state.start)
        state.start += t
        if state.overlap is None:
            state.overlap = x.new_zeros(1, RIGHT, x.shape[-1])
        x = torch.cat([state.overlap, x], dim=1)
        state.overlap = x[:, -RIGHT:]
        first = not state.keys
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, None if first else lambda k, v, i=i: (state.keys[i], state.values[i]))
            # Only the rows before the last RIGHT enter the cache, as computed in this window.
            k, v = k[:, :, :-RIGHT], v[:, :, :-RIGHT]
            if first:
                state.keys.append(k)
                state.values.append(v)
            else:
                state.keys[i] = torch.cat([state.keys[i], k], dim=2)[:, :, -LOOK_BACK * STEP :]
                state.values[i] = torch.cat([state.values[i], v], dim=2)[:, :, -LOOK_BACK * STEP :]
        return self.after_norm(x)[:, -t:]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """All chunks of an utterance at once: (T, input_size) -> (T, output_size), equal to the chunk loop.

        Window c holds frames 4c-5 … 4c+3 (zeros before 0); in every layer its queries see the
        cached keys of windows c-4 … c-1 (their first 4 rows, which only full windows have)
        and its own. The last window may be short: its missing rows are masked as keys and
        zeroed before the FSMN, which is what the reference's zero padding sees.
        """
        total = feats.shape[0]
        n = -(-total // STEP)
        dev = feats.device
        x = F.pad(self.embed(feats, 0), (0, 0, RIGHT, n * STEP - total))
        x = x.unfold(0, RIGHT + STEP, STEP).transpose(1, 2)  # (n, 9, input_size)
        rows = torch.arange(RIGHT + STEP, device=dev)
        real = rows[None, :] < RIGHT + total - STEP * torch.arange(n, device=dev)[:, None]  # (n, 9)
        cached = torch.arange(n, device=dev)[:, None] - LOOK_BACK + torch.arange(LOOK_BACK, device=dev)[None, :] >= 0
        key_mask = torch.cat([cached.repeat_interleave(STEP, dim=1), real], dim=1)[:, None, None, :]
        row_mask = real[:, :, None].to(x.dtype)
        for layer in self.layers:
            x, _, _ = layer(x, _look_back, key_mask, row_mask)
        return self.after_norm(x[:, RIGHT:]).reshape(n * STEP, -1)[:total]


def _look_back(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of n windows (n, H, 9, d): the first STEP rows of the LOOK_BACK windows before it, oldest first."""
    n = k.shape[0]

    def gather(y):
        y = F.pad(y[:, :, :STEP], (0, 0, 0, 0, 0, 0, LOOK_BACK, 0))
        return torch.cat([y[j : j + n] for j in range(LOOK_BACK)], dim=2)

    return gather(k), gather(v)
