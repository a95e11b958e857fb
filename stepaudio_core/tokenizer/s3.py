"""CosyVoice's S3 tokenizer v1 at 25 Hz: a Whisper-style audio encoder and a vector-quantizer codebook.

Shapes: 128-bin log-mel (B, 128, T) -> conv1 (k3, stride 2) + GELU -> conv2 (k3, stride 2) + GELU
-> (B, ceil(T / 4), 1280) + the stored position table -> 6 pre-norm attention blocks (no
final norm) -> L2-normalised frames -> index of the nearest of 4096 codebook rows. (The 50 Hz v1
network differs only in conv1's stride, 1; Step-Audio uses the 25 Hz one.)

Module names equal the keys of the state dict that ``vq06.read_s3_onnx`` reads out of
``speech_tokenizer_v1.onnx``, so loading is one strict load. The network knows nothing of ONNX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class S3Dims:
    """Sizes of the S3 tokenizer; the defaults are the released v1 25 Hz model."""

    n_mels: int = 128
    n_ctx: int = 1500  # rows of the position table: at most 60 s of 25 Hz frames
    n_state: int = 1280
    n_head: int = 20
    n_layer: int = 6
    n_codes: int = 4096


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's position table (sin half, then cos half); the released file stores the table it uses."""
    half = channels // 2
    inv_timescales = torch.exp(-math.log(max_timescale) / (half - 1) * torch.arange(half))
    angles = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)  # a key bias only shifts each softmax row
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        # q and k are each scaled by head_dim ** -0.25, in this order, as the exported graph does.
        scale = (d // self.n_head) ** -0.25
        q = self.query(x).view(b, t, self.n_head, -1).transpose(1, 2) * scale
        k = self.key(x).view(b, t, self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = self.value(x).view(b, t, self.n_head, -1).transpose(1, 2)
        w = torch.softmax((q @ k).float(), dim=-1).to(v.dtype)
        return self.out((w @ v).transpose(1, 2).reshape(b, t, d))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    def __init__(self, dims: S3Dims):
        super().__init__()
        self.conv1 = nn.Conv1d(dims.n_mels, dims.n_state, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(dims.n_state, dims.n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(dims.n_ctx, dims.n_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(dims.n_state, dims.n_head) for _ in range(dims.n_layer))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> (B, T', n_state) frames, T' = ceil(T / 4) at 25 Hz."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.positional_embedding.shape[0]:
            raise InputError(
                f"S3 tokenizer: {mel.shape[-1]} mel frames give {x.shape[1]} positions, more than the "
                f"{self.positional_embedding.shape[0]} the model has; pass at most 30 s at a time."
            )
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return x


class Codebook(nn.Module):
    def __init__(self, n_codes: int, n_state: int):
        super().__init__()
        self.register_buffer("embed", torch.zeros(n_codes, n_state))


class VectorQuantizer(nn.Module):
    """Nearest codebook row to each L2-normalised frame."""

    def __init__(self, n_codes: int, n_state: int):
        super().__init__()
        self._codebook = Codebook(n_codes, n_state)  # the release's scope name: quantizer/.../_codebook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.float(), dim=-1)
        embed = self._codebook.embed.float().t()
        # Minus the full squared distance, summed in the reference's order so near-ties break alike.
        score = -(x.pow(2).sum(-1, keepdim=True) - 2 * (x @ embed) + embed.pow(2).sum(0, keepdim=True))
        return score.argmax(dim=-1)


class S3Tokenizer(nn.Module):
    """(B, n_mels, T) Whisper log-mel of unpadded clips -> (B, T') int64 codes; T' = ceil(T / 4) at 25 Hz."""

    def __init__(self, dims: S3Dims):
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.quantizer = VectorQuantizer(dims.n_codes, dims.n_state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.encoder(mel))
