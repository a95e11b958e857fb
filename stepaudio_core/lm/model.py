"""Step1, the Step-Audio-EditX language model, in plain PyTorch.

A pre-norm decoder without positional embeddings: position enters only through a causal
sqrt-ALiBi bias, -slope_h * sqrt(i - j), added to the attention scores (docs lm.md 3). Query
head h reads key/value group h // (heads / groups). Attribute names equal the checkpoint keys.

Unlike the reference, which rebuilds a heads x L x L bias in every layer at every step, the bias
here is built once per forward and only for the rows being computed: one row per head while
decoding, one chunk of rows during prefill. Keys and values live in a preallocated cache, and
the grouped heads are folded into the query length so no key or value is ever repeated.

``StaticDecodeStep`` is an optional decode step with fixed shapes, which a CUDA graph can replay.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import Step1Config


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The reference's per-head slopes (fp32) for any head count.

    n = the largest power of two <= n_heads gets 2^(-8k/n), k = 1..n; the remaining heads get
    2^(-4m/n) for odd m = 1, 3, ... (48 heads: 32 + 16, not interleaved).
    """
    n = 2 ** math.floor(math.log2(n_heads))
    slopes = torch.pow(2.0 ** (-8.0 / n), torch.arange(1, n + 1, device="cpu"))
    if n < n_heads:
        extra = torch.pow(2.0 ** (-4.0 / n), torch.arange(1, 1 + 2 * (n_heads - n), 2, device="cpu"))
        slopes = torch.cat([slopes, extra])
    return slopes


def alibi_bias(
    slopes: torch.Tensor, start: int | torch.Tensor, q_len: int, k_len: int, dtype: torch.dtype
) -> torch.Tensor:
    """(heads, q_len, k_len) bias for queries at positions start.. and keys at 0..k_len-1.

    Computed in fp32 and cast to the attention dtype last, as the reference does. ``start`` may
    be a one-element tensor on the slopes' device (the static decode step keeps it there).
    """
    device = slopes.device
    dist = (start + torch.arange(q_len, device=device))[:, None] - torch.arange(k_len, device=device)[None, :]
    bias = -torch.sqrt(dist.clamp(min=0).float()) * slopes[:, None, None].float()
    return bias.masked_fill(dist < 0, float("-inf")).to(dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # variance in fp32, the scale cast back to x's dtype before the weight (reference order)
        var = x.float().pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps).to(x.dtype) * self.weight


class KVCache:
    """Keys and values of every layer, (batch, groups, capacity, head_dim), for ``length`` tokens.

    ``length`` only advances when a forward pass has finished, so a pass that was interrupted
    leaves the cache as it was before it.
    """

    def __init__(self, cfg: Step1Config, capacity: int, batch: int, device: torch.device, dtype: torch.dtype):
        shape = (batch, cfg.num_attention_groups, max(capacity, 1), cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.length = 0

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (batch, groups, n, head_dim) after the cached tokens; return all keys and values."""
        end = self.length + k.shape[2]
        if end > self.k[layer].shape[2]:
            self.k[layer] = self._grown(self.k[layer], end)
            self.v[layer] = self._grown(self.v[layer], end)
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def _grown(self, buf: torch.Tensor, needed: int) -> torch.Tensor:
        new = buf.new_zeros(*buf.shape[:2], max(needed, 2 * buf.shape[2]), buf.shape[3])
        new[:, :, : self.length] = buf[:, :, : self.length]
        return new


class Attention(nn.Module):
    def __init__(self, cfg: Step1Config):
        super().__init__()
        self.n_heads, self.n_groups, self.head_dim = cfg.num_attention_heads, cfg.num_attention_groups, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_groups * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_groups * self.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, _ = x.shape
        G, R, D = self.n_groups, self.n_heads // self.n_groups, self.head_dim
        # head h = g * R + r; the R heads of a group are stacked along the query axis: (B, G, R*T, D)
        q = self.q_proj(x).view(B, T, G, R, D).permute(0, 2, 3, 1, 4).reshape(B, G, R * T, D)
        k = self.k_proj(x).view(B, T, G, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, G, D).transpose(1, 2)
        if cache is not None:
            k, v = cache.write(layer, k, v)
        mask = bias.view(G, R * T, bias.shape[-1])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.view(B, G, R, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, G * R * D))


class MLP(nn.Module):
    def __init__(self, cfg: Step1Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: Step1Config):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), bias, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Step1Model(nn.Module):
    def __init__(self, cfg: Step1Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.n_heads = cfg.num_attention_heads
        # fp32 slopes, computed on the CPU like the reference's; not a buffer, which .to(dtype) would cast
        self._slopes = alibi_slopes(self.n_heads)

    def forward(
        self, ids: torch.Tensor, cache: KVCache | None = None, layer_outputs: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Final-normed hidden states (B, T, hidden) of ``ids`` (B, T), continuing ``cache`` if given.

        ``layer_outputs``, if a list, receives the residual stream after each layer.
        """
        start = cache.length if cache is not None else 0
        x = self.embed_tokens(ids)
        T = ids.shape[1]
        if self._slopes.device != x.device:
            self._slopes = self._slopes.to(x.device)
        bias = alibi_bias(self._slopes, start, T, start + T, x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, bias, cache, i)
            if layer_outputs is not None:
                layer_outputs.append(x)
        if cache is not None:
            cache.length = start + T
        return self.norm(x)


class Step1ForCausalLM(nn.Module):
    def __init__(self, cfg: Step1Config):
        super().__init__()
        self.config = cfg
        self.model = Step1Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)  # its own weights: never tied

    @property
    def device(self) -> torch.device:
        """Where the weights are now (a host may have moved them)."""
        return self.model.embed_tokens.weight.device

    @device.setter
    def device(self, value) -> None:
        # ComfyUI's ModelPatcher records the device it moved the module to by assigning this
        # attribute; the getter already reports where the weights are, so there is nothing to keep.
        pass

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab), or (B, 1, vocab) for the last position only."""
        h = self.model(ids, cache)
        return self.lm_head(h[:, -1:] if last_only else h)

    def new_cache(self, capacity: int, batch: int = 1) -> KVCache:
        w = self.model.embed_tokens.weight
        return KVCache(self.config, capacity, batch, w.device, w.dtype)

    def prefill(self, ids: torch.Tensor, cache: KVCache, chunk_size: int = 256) -> torch.Tensor:
        """Run ``ids`` (B, T) into ``cache`` in chunks; return the last position's logits (B, vocab).

        Each chunk's attention bias is (heads, chunk, keys so far), never the full T x T square.
        """
        if ids.shape[1] == 0:
            raise ValueError("prefill needs at least one token")
        starts = range(0, ids.shape[1], chunk_size)
        for s in starts[:-1]:
            self.model(ids[:, s : s + chunk_size], cache)
        return self(ids[:, starts[-1] :], cache, last_only=True)[:, -1]


class _WritesAt:
    """A KVCache seen through a position held in a device tensor: writes there, reads the whole capacity."""

    def __init__(self, cache: KVCache, pos: torch.Tensor):
        self.cache, self.pos = cache, pos

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.cache.k[layer].index_copy_(2, self.pos, k)
        self.cache.v[layer].index_copy_(2, self.pos, v)
        return self.cache.k[layer], self.cache.v[layer]


class StaticDecodeStep:
    """One-token decode steps with fixed shapes: the same kernels on the same buffers every step.

    The position lives in a device tensor, keys and values are written there with ``index_copy_``
    and every step attends over the cache's whole capacity with the keys after the position
    masked (-inf), so nothing in a step depends on a Python number that changes. On CUDA, with
    ``cuda_graph=True``, the step is captured once as a CUDA graph and each call replays it: one
    launch per token instead of hundreds. The masked keys add exact zeros to the softmax in
    another order than the plain step's shorter sums, so logits agree with ``Step1ForCausalLM``'s
    to rounding, not bit for bit: an option, never the default.

    Call it after the prefill with the last drawn id (a one-element tensor on the model's device);
    it returns the next logits (1, vocab). With a graph that tensor is overwritten by the next call.
    """

    def __init__(self, model: Step1ForCausalLM, cache: KVCache, cuda_graph: bool = False):
        if cache.k[0].shape[0] != 1:
            raise ValueError("the static decode step takes a batch of one")
        if cuda_graph and model.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the model on a CUDA device, not {model.device}")
        self.model, self.cache = model, cache
        device = model.device
        self.start = cache.length
        self.pos = torch.full((1,), cache.length, dtype=torch.long, device=device)
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.steps, self.capacity = 0, cache.k[0].shape[2]
        self.graph = None
        if cuda_graph and self.capacity > self.start:
            self._capture()

    def _step(self) -> torch.Tensor:
        m = self.model.model
        x = m.embed_tokens(self.token)
        if m._slopes.device != x.device:
            m._slopes = m._slopes.to(x.device)
        bias = alibi_bias(m._slopes, self.pos, 1, self.cache.k[0].shape[2], x.dtype)
        writes = _WritesAt(self.cache, self.pos)
        for i, layer in enumerate(m.layers):
            x = layer(x, bias, writes, i)
        self.pos.add_(1)
        return self.model.lm_head(m.norm(x))[:, -1]

    def _capture(self) -> None:
        # warm up on a side stream (cuBLAS and allocator set-up must not happen during capture);
        # the rows these steps write are masked until the real steps overwrite them
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(min(2, self.capacity - self.start)):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.pos.fill_(self.start)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        if self.start + self.steps >= self.capacity:  # counted here: the position itself stays on the device
            raise ValueError(f"the KV cache holds {self.capacity} tokens and is full")
        self.steps += 1
        self.token.copy_(token.view(1, 1))
        if self.graph is None:
            return self._step()
        self.graph.replay()
        return self.logits
