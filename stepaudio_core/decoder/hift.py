"""HiFT vocoder: 80-bin mel at 50 Hz -> 24 kHz waveform (neural source filter + iSTFTNet).

A small conv net predicts f0 from the mel; a harmonic sine source (``SineGen2`` in the reference)
turns f0 into an excitation at the audio rate; the generator upsamples the mel x120, mixing in the
source's STFT at each stage, and predicts a 16-point STFT (log-magnitude and phase) that an
inverse STFT turns into 480 samples per mel frame.

Parameter names equal the keys of the released ``hift.pt``, whose convs are weight-normed with
``torch.nn.utils.parametrizations.weight_norm`` (``<conv>.parametrizations.weight.original0/1``).
``load_hift`` also accepts the legacy ``<conv>.weight_g`` / ``weight_v`` layout.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..errors import InputError
from ..weights.checkpoint import load_strict, load_torch_state_dict
from .config import HiFTConfig


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class Snake(nn.Module):
    """x + sin^2(alpha x) / alpha with a per-channel alpha on a linear scale."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.alpha[None, :, None]
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class ResBlock(nn.Module):
    """Per dilation d: x += conv(snake(conv_d(snake(x)))), both convs 'same'-padded."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=_padding(kernel_size))) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for conv1, conv2, act1, act2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = x + conv2(act2(conv1(act1(x))))
        return x


class ConvRNNF0Predictor(nn.Module):
    """f0 in Hz, one value per mel frame: five (conv k3, ELU) layers, a linear head and |.|."""

    def __init__(self, num_class: int, in_channels: int, cond_channels: int):
        super().__init__()
        layers = []
        for i in range(5):
            layers += [weight_norm(nn.Conv1d(in_channels if i == 0 else cond_channels, cond_channels, 3, padding=1))]
            layers += [nn.ELU()]
        self.condnet = nn.Sequential(*layers)  # convs at the even indices, as in the checkpoint
        self.classifier = nn.Linear(cond_channels, num_class)

    def forward(self, mel: Tensor) -> Tensor:
        return self.classifier(self.condnet(mel).transpose(1, 2)).squeeze(-1).abs()


class SourceModuleHnNSF2(nn.Module):
    """The harmonic excitation: sines at f0 x [1..H+1] in voiced frames plus Gaussian noise, mixed to one channel.

    The reference integrates the phase at the mel rate: it linearly resamples the per-sample phase
    increment down by ``upsample`` (every read position falls inside one frame's constant run, so
    this is exactly the per-frame increment), cumsums, and linearly resamples the phase back up.
    Its random initial phase lands on sample 0, which that downsampling never reads, so it has no
    effect and is not drawn here.
    """

    def __init__(self, cfg: HiFTConfig, upsample: int):
        super().__init__()
        self.sampling_rate = cfg.sampling_rate
        self.upsample = upsample
        self.harmonics = cfg.nb_harmonics + 1
        self.sine_amp = cfg.nsf_alpha
        self.noise_std = cfg.nsf_sigma
        self.voiced_threshold = cfg.nsf_voiced_threshold
        self.l_linear = nn.Linear(self.harmonics, 1)

    def forward(self, f0: Tensor, noise: Tensor) -> Tensor:
        """f0 (B, T) Hz and noise (B, T*upsample, H+1) ~ N(0, 1) -> source (B, T*upsample, 1), all fp32."""
        f0 = f0.float()[:, :, None]  # (B, T, 1)
        harmonics = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=f0.dtype)
        rad = (f0 * harmonics / self.sampling_rate) % 1
        phase = torch.cumsum(rad, dim=1) * 2 * math.pi
        # Linear (not nearest) upsampling of the phase, scaled so its slope is the per-sample increment.
        phase = F.interpolate(phase.transpose(1, 2) * self.upsample, scale_factor=self.upsample, mode="linear")
        sines = torch.sin(phase.transpose(1, 2)) * self.sine_amp
        uv = (f0 > self.voiced_threshold).float().repeat_interleave(self.upsample, dim=1)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        sine_waves = sines * uv + noise_amp * noise
        return torch.tanh(self.l_linear(sine_waves.to(self.l_linear.weight.dtype))).float()


class HiFTGenerator(nn.Module):
    def __init__(self, cfg: HiFTConfig):
        super().__init__()
        self.cfg = cfg
        n_fft, ch = cfg.istft_n_fft, cfg.base_channels
        self.upsample = math.prod(cfg.upsample_rates) * cfg.istft_hop_len  # audio samples per mel frame
        self.num_kernels = len(cfg.resblock_kernel_sizes)

        self.f0_predictor = ConvRNNF0Predictor(cfg.f0_num_class, cfg.f0_in_channels, cfg.f0_cond_channels)
        self.m_source = SourceModuleHnNSF2(cfg, self.upsample)
        self.conv_pre = weight_norm(nn.Conv1d(cfg.in_channels, ch, 7, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        # The source's STFT frames (one per hop) are brought down to each stage's rate.
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        for i, (k, d) in enumerate(zip(cfg.source_resblock_kernel_sizes, cfg.source_resblock_dilation_sizes)):
            u = math.prod(cfg.upsample_rates[i + 1 :])
            c = ch // 2 ** (i + 1)
            down = nn.Conv1d(n_fft + 2, c, 1) if u == 1 else nn.Conv1d(n_fft + 2, c, u * 2, u, padding=u // 2)
            self.source_downs.append(down)
            self.source_resblocks.append(ResBlock(c, k, d))
        self.resblocks = nn.ModuleList(
            ResBlock(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
        )
        self.conv_post = weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), n_fft + 2, 7, padding=3))

    def _window(self, device: torch.device) -> Tensor:
        return torch.hann_window(self.cfg.istft_n_fft, periodic=True, dtype=torch.float32, device=device)

    def decode(self, mel: Tensor, source: Tensor) -> Tensor:
        """mel (B, 80, T), source (B, 1, L) -> conv_post output (B, n_fft + 2, L / hop + 1): log-magnitude, phase."""
        n_fft, hop = self.cfg.istft_n_fft, self.cfg.istft_hop_len
        spec = torch.stft(
            source[:, 0].float(), n_fft, hop, n_fft, window=self._window(source.device), return_complex=True
        )
        s_stft = torch.cat([spec.real, spec.imag], dim=1).to(mel.dtype)

        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, self.cfg.lrelu_slope))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")  # 120T -> 120T + 1, the STFT's frame count
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        # The reference calls leaky_relu here without a slope: 0.01, not lrelu_slope.
        return self.conv_post(F.leaky_relu(x))

    def istft(self, x: Tensor) -> Tensor:
        """conv_post output -> waveform (B, hop * (frames - 1)), in fp32 whatever the module's dtype."""
        n_fft, hop = self.cfg.istft_n_fft, self.cfg.istft_hop_len
        x = x.float()
        magnitude = torch.exp(x[:, : n_fft // 2 + 1]).clamp(max=1e2)
        phase = torch.sin(x[:, n_fft // 2 + 1 :])  # sin() of a phase is what the model was trained with
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return torch.istft(spec, n_fft, hop, n_fft, window=self._window(x.device))

    @torch.inference_mode()
    def inference(
        self, mel: Tensor, *, source_noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """mel (B, 80, T) -> (speech (B, 480*T) fp32 clamped to +-audio_limit, source (B, 1, 480*T) fp32).

        The only random draw is the source's Gaussian noise, (B, 480*T, nb_harmonics + 1): taken
        from ``source_noise`` when given, else drawn from ``generator`` (torch's default one if None).
        """
        if mel.dim() != 3 or mel.shape[1] != self.cfg.in_channels or mel.shape[2] == 0:
            raise InputError(f"HiFT mel must be (B, {self.cfg.in_channels}, T) with T > 0; got {tuple(mel.shape)}")
        dtype = self.conv_pre.bias.dtype
        mel = mel.to(dtype)
        batch, length = mel.shape[0], mel.shape[2] * self.upsample
        shape = (batch, length, self.m_source.harmonics)
        if source_noise is None:
            # Drawn channel-major, as the reference's randn_like does on its transposed sines: a CPU
            # generator in the reference's RNG state gives the reference's numbers.
            source_noise = torch.empty(shape[0], shape[2], shape[1], device=mel.device)
            source_noise = source_noise.transpose(1, 2).normal_(generator=generator)
        elif tuple(source_noise.shape) != shape:
            raise InputError(f"source_noise must have shape {shape} for this mel; got {tuple(source_noise.shape)}")

        f0 = self.f0_predictor(mel)
        source = self.m_source(f0, source_noise.to(mel.device, torch.float32)).transpose(1, 2)
        speech = self.istft(self.decode(mel, source))
        return speech.clamp(-self.cfg.audio_limit, self.cfg.audio_limit), source

    def fold_weight_norm(self) -> HiFTGenerator:
        """Replace every weight-normed weight by g * v / |v| once, so inference stops recomputing it.

        The state dict then holds plain ``<conv>.weight`` keys (246 at the real size instead of 328).
        """
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self


def _rename_legacy_weight_norm(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """``<conv>.weight_g`` / ``.weight_v`` (torch.nn.utils.weight_norm) -> the parametrizations names."""
    renamed = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g"):
            key = key[: -len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith(".weight_v"):
            key = key[: -len("weight_v")] + "parametrizations.weight.original1"
        renamed[key] = value
    return renamed


def load_hift(path: str | os.PathLike, cfg: HiFTConfig, *, fold: bool = True) -> HiFTGenerator:
    """Load ``hift.pt`` (either weight-norm key layout) strictly into an fp32 HiFTGenerator in eval mode.

    ``fold`` folds the weight norm after loading (see ``HiFTGenerator.fold_weight_norm``).
    """
    state_dict = _rename_legacy_weight_norm(load_torch_state_dict(path, "HiFT vocoder weights (hift.pt)"))
    model = HiFTGenerator(cfg)
    load_strict(model, state_dict, path, "HiFT vocoder weights (hift.pt)")
    if fold:
        model.fold_weight_norm()
    return model.eval()
