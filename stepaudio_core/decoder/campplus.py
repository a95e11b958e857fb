"""CAM++ speaker embedding (3D-Speaker / FunASR ``CAMPPlus``) in the BN-folded form of ``campplus.onnx``.

The release ships CAM++ only as an ONNX export, in which the exporter folded every BatchNorm
that directly follows a convolution into that convolution's weight and bias. This module is
that folded network: those convolutions carry a bias and the BN is gone, while the
pre-activation BNs (whose input also feeds a dense concatenation) and the final affine-free BN
remain. Module names equal the original ones, so the state dict read from the ONNX graph
(``campplus_onnx.py``) loads strictly.

Shapes: fbank (B, T, 80) -> FCM head (B, 32*10, T) -> TDNN (stride 2) -> 3 CAM-dense blocks
with transits -> mean and std over time -> dense -> (B, 192).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..features import kaldi_fbank

# (kernel size, dilation) of the CAM-dense layers in each of the three blocks.
BLOCK_KERNELS = (3, 3, 3)
BLOCK_DILATIONS = (1, 2, 2)
SEGMENT_LEN = 100


@dataclass(frozen=True)
class CAMPPlusDims:
    """Sizes of CAM++; the defaults are the released model (6.85 M parameters)."""

    feat_dim: int = 80
    embedding_size: int = 192
    growth_rate: int = 32
    bn_size: int = 4
    init_channels: int = 128
    m_channels: int = 32
    block_layers: tuple[int, int, int] = (12, 24, 16)


class BatchNorm(nn.Module):
    """Inference-only BatchNorm over dim 1: the ONNX file carries no training state to keep."""

    def __init__(self, channels: int, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def _nonlinear(channels: int | None) -> nn.Sequential:
    """``batchnorm-relu``, or only the ReLU where the BN was folded into the preceding conv."""
    layers = OrderedDict()
    if channels is not None:
        layers["batchnorm"] = BatchNorm(channels)
    layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


class BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """2-D residual front end over (freq, time); frequency is downsampled by 8."""

    def __init__(self, m_channels: int, feat_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1)
        self.layer1 = nn.Sequential(BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1))
        self.layer2 = nn.Sequential(BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1))
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x.unsqueeze(1)))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.conv2(out))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.nonlinear = _nonlinear(None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by utterance- and segment-level context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU()
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        m = self.sigmoid(self.linear2(self.relu(self.linear1(context))))
        return y * m

    @staticmethod
    def seg_pooling(x: torch.Tensor) -> torch.Tensor:
        # Mean of each 100-frame segment (the last one over its true length), spread back over its frames.
        seg = F.avg_pool1d(x, kernel_size=SEGMENT_LEN, stride=SEGMENT_LEN, ceil_mode=True)
        shape = seg.shape
        seg = seg.unsqueeze(-1).expand(*shape, SEGMENT_LEN).reshape(*shape[:-1], -1)
        return seg[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _nonlinear(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1)  # folded with nonlinear2's BN
        self.nonlinear2 = _nonlinear(None)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bias: bool):
        super().__init__()
        self.nonlinear = _nonlinear(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=BatchNorm(out_channels, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    def __init__(self, dims: CAMPPlusDims = CAMPPlusDims()):
        super().__init__()
        self.dims = dims
        self.head = FCM(dims.m_channels, dims.feat_dim)
        layers = OrderedDict(tdnn=TDNNLayer(self.head.out_channels, dims.init_channels, 5, stride=2))
        channels = dims.init_channels
        bn_channels = dims.bn_size * dims.growth_rate
        for i, (n, k, d) in enumerate(zip(dims.block_layers, BLOCK_KERNELS, BLOCK_DILATIONS)):
            layers[f"block{i + 1}"] = CAMDenseTDNNBlock(n, channels, dims.growth_rate, bn_channels, k, d)
            channels += n * dims.growth_rate
            # The last transit's conv absorbed out_nonlinear's BN, so it has a bias.
            layers[f"transit{i + 1}"] = TransitLayer(channels, channels // 2, bias=i == len(dims.block_layers) - 1)
            channels //= 2
        layers["out_nonlinear"] = _nonlinear(None)
        layers["stats"] = StatsPool()
        layers["dense"] = DenseLayer(channels * 2, dims.embedding_size)
        self.xvector = nn.Sequential(layers)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, feat_dim) mean-normalised fbank -> (B, embedding_size)."""
        return self.xvector(self.head(feats.permute(0, 2, 1)))


def speaker_embedding(model: CAMPPlus, wav_16k: torch.Tensor) -> torch.Tensor:
    """The reference ``extract_spk_embedding`` after resampling: 16 kHz mono (N,) -> (1, embedding_size).

    80-bin Kaldi fbank of the waveform as it is (not scaled to int16 range), minus its mean over
    time, through the network.
    """
    if wav_16k.dim() == 2 and wav_16k.shape[0] == 1:
        wav_16k = wav_16k[0]
    if wav_16k.dim() != 1:
        raise InputError(f"speaker_embedding: expected mono 16 kHz audio of shape (N,), got {tuple(wav_16k.shape)}")
    param = next(model.parameters())
    # The fbank is float32 whatever the model's dtype: torch's FFT does not take half precision.
    wav = wav_16k.to(device=param.device, dtype=torch.float32)
    feats = kaldi_fbank(wav, num_mel_bins=model.dims.feat_dim, dither=0.0, sample_frequency=16000.0)
    # The TDNN halves the frame rate and the std pooling needs two frames: at least 3 fbank frames.
    if feats.shape[0] < 3:
        raise InputError(
            f"speaker_embedding: the audio has {wav.shape[0]} samples at 16 kHz; at least 720 (45 ms) are "
            "needed for a speaker embedding. Use a longer prompt."
        )
    feats = feats - feats.mean(dim=0, keepdim=True)
    with torch.no_grad():
        return model(feats.unsqueeze(0).to(param.dtype))
