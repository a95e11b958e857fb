"""UpsampleConformerEncoderV2: 25 Hz token embeddings -> 50 Hz features for the flow decoder.

Non-streaming use only (the release runs full attention; its chunk masks were never published):
linear embed + relative positions, a 3-frame lookahead conv, 6 pre-norm conformer layers without
conv module or macaron FFN, nearest x2 upsample with a causal conv, a second embed and 4 more
layers, then a final LayerNorm. Attribute names are the checkpoint keys under ``encoder.``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelFileError
from .config import EncoderConfig


def rel_positions(size: int, d_model: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """ESPnet relative sin/cos table (1, 2*size-1, d_model), rows from position size-1 down to -(size-1).

    Built in fp32 and then cast, as the reference caches its 5000-row table in the input's dtype.
    """
    position = torch.arange(size, dtype=torch.float32, device=device)[:, None]
    div_term = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / d_model)
    )

    def table(pos: Tensor) -> Tensor:
        pe = torch.zeros(size, d_model, device=device)
        pe[:, 0::2] = torch.sin(pos * div_term)
        pe[:, 1::2] = torch.cos(pos * div_term)
        return pe

    positive = torch.flip(table(position), [0])
    negative = table(-1 * position)[1:]
    return torch.cat([positive, negative], dim=0)[None].to(dtype)


class LinearEmbed(nn.Module):
    """ESPnet ``LinearNoSubsampling`` with ``EspnetRelPositionalEncoding``: x -> (LN(Wx)*sqrt(d), pos_emb)."""

    def __init__(self, idim: int, odim: int):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5))
        self.xscale = math.sqrt(odim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.out(x) * self.xscale
        return x, rel_positions(x.shape[1], x.shape[2], x.device, x.dtype)


class RelPositionMultiHeadedAttention(nn.Module):
    """Transformer-XL style attention: scores = [(q+u)k^T + rel_shift((q+v)p^T)] / sqrt(d_k)."""

    def __init__(self, n_head: int, n_feat: int, key_bias: bool):
        super().__init__()
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat, bias=key_bias)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(n_head, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(n_head, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    @staticmethod
    def rel_shift(x: Tensor) -> Tensor:
        """(B, H, T, 2T-1) scores against positions T-1..-(T-1) -> (B, H, T, T) scores against keys."""
        b, h, t, n = x.shape
        x = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
        return x[:, :, 1:].reshape(b, h, t, n)[:, :, :, : n // 2 + 1]

    def forward(self, x: Tensor, pos_emb: Tensor) -> Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.shape[0], -1, self.h, self.d_k).transpose(1, 2)
        # Not SDPA: it would scale (q+u)k^T before adding the positional term, which rounds differently.
        matrix_ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        matrix_bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        attn = torch.softmax((matrix_ac + matrix_bd) / math.sqrt(self.d_k), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, self.h * self.d_k)
        return self.linear_out(out)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim: int, hidden_units: int):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerEncoderLayer(nn.Module):
    """Pre-norm attention and FFN residual blocks (the release builds no conv module and no macaron FFN)."""

    def __init__(self, size: int, n_head: int, linear_units: int, key_bias: bool):
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(n_head, size, key_bias)
        self.feed_forward = PositionwiseFeedForward(size, linear_units)
        self.norm_ff = nn.LayerNorm(size, eps=1e-12)
        self.norm_mha = nn.LayerNorm(size, eps=1e-12)

    def forward(self, x: Tensor, pos_emb: Tensor) -> Tensor:
        x = x + self.self_attn(self.norm_mha(x), pos_emb)
        return x + self.feed_forward(self.norm_ff(x))


class PreLookaheadLayer(nn.Module):
    """Lets each frame see ``pre_lookahead_len`` future tokens: right-padded conv, leaky ReLU, causal conv, residual."""

    def __init__(self, channels: int, pre_lookahead_len: int):
        super().__init__()
        self.pre_lookahead_len = pre_lookahead_len
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=pre_lookahead_len + 1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        y = F.pad(x.transpose(1, 2), (0, self.pre_lookahead_len))
        y = F.leaky_relu(self.conv1(y))
        y = self.conv2(F.pad(y, (2, 0)))
        return y.transpose(1, 2) + x


class Upsample1D(nn.Module):
    """Nearest upsampling in time followed by a causal conv of kernel 2*stride+1."""

    def __init__(self, channels: int, stride: int, scale_factor: float):
        super().__init__()
        self.stride = stride
        self.scale_factor = float(scale_factor)
        self.conv = nn.Conv1d(channels, channels, kernel_size=2 * stride + 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, T) -> (B, C, scale_factor*T)."""
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="nearest")
        return self.conv(F.pad(x, (2 * self.stride, 0)))


_SUPPORTED = {
    "input_layer": "linear",
    "pos_enc_layer_type": "rel_pos_espnet",
    "selfattention_layer_type": "rel_selfattn",
    "activation_type": "swish",
    "normalize_before": True,
}


class UpsampleConformerEncoderV2(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        for name, value in _SUPPORTED.items():
            if getattr(cfg, name) != value:
                raise ModelFileError(
                    f"cosyvoice.yaml sets flow.encoder.{name} = {getattr(cfg, name)!r}; this pack implements the "
                    f"Step-Audio-EditX release ({name} = {value!r}). Use the CosyVoice-300M-25Hz folder of Step-Audio-EditX."
                )
        d = cfg.output_size
        self.embed = LinearEmbed(cfg.input_size, d)
        self.pre_lookahead_layer = PreLookaheadLayer(d, cfg.pre_lookahead_len)
        self.encoders = nn.ModuleList(
            ConformerEncoderLayer(d, cfg.attention_heads, cfg.linear_units, cfg.key_bias) for _ in range(cfg.num_blocks)
        )
        self.up_layer = Upsample1D(d, cfg.up_stride, cfg.up_scale_factor)
        # The reference builds up_embed with input_size although it sees encoder outputs (config.py checks they match).
        self.up_embed = LinearEmbed(cfg.input_size, d)
        self.up_encoders = nn.ModuleList(
            ConformerEncoderLayer(d, cfg.attention_heads, cfg.linear_units, cfg.key_bias) for _ in range(cfg.num_up_blocks)
        )
        self.after_norm = nn.LayerNorm(d, eps=1e-5)

    def forward(self, xs: Tensor) -> Tensor:
        """xs: (B, T, input_size) token embeddings -> (B, 2T, output_size), full attention over all frames."""
        xs, pos_emb = self.embed(xs)
        xs = self.pre_lookahead_layer(xs)
        for layer in self.encoders:
            xs = layer(xs, pos_emb)
        xs = self.up_layer(xs.transpose(1, 2)).transpose(1, 2)
        xs, pos_emb = self.up_embed(xs)
        for layer in self.up_encoders:
            xs = layer(xs, pos_emb)
        return self.after_norm(xs)
