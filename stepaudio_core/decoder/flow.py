"""Flow matching decoder: (prompt + target) token pairs -> 80-bin mel at 50 Hz.

``CausalMaskedDiffWithXvec`` embeds both token columns with one shared table, runs the
upsampling conformer to get mu at twice the token rate, and solves the flow ODE from Gaussian
noise with a 10-step Euler solver on a cosine time grid. Classifier-free guidance runs the
conditional and unconditional estimates as one batch. The prompt's mel is given as a condition
on the first frames, and those frames are dropped from the output.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, ModelFileError
from ..weights.checkpoint import load_strict, load_torch_state_dict
from .config import FlowConfig
from .dit import DiT
from .encoder import UpsampleConformerEncoderV2


class DualCodebookEmbedding(nn.Module):
    """One table for both columns (rows 0..1024 vq02 + pad, 1025..5120 vq06); output cat(emb(c0), emb(c1))."""

    def __init__(self, vocab_size: int, input_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size // 2)

    def forward(self, token: Tensor) -> Tensor:
        """token: (B, T, 2) -> (B, T, input_size)."""
        return torch.cat([self.embedding(token[..., 0]), self.embedding(token[..., 1])], dim=-1)


def cosine_t_span(n_timesteps: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Euler time grid: linspace(0, 1, n+1) mapped through 1 - cos(t*pi/2), denser near t = 0."""
    t = torch.linspace(0, 1, n_timesteps + 1, device=device, dtype=dtype)
    return 1 - torch.cos(t * 0.5 * torch.pi)


class CausalConditionalCFM(nn.Module):
    """Euler solver of the flow ODE with classifier-free guidance (conditional and unconditional in one batch)."""

    def __init__(self, estimator: DiT, inference_cfg_rate: float):
        super().__init__()
        self.estimator = estimator
        self.inference_cfg_rate = inference_cfg_rate

    def forward(self, mu: Tensor, spks: Tensor, cond: Tensor, x: Tensor, n_timesteps: int = 10) -> Tensor:
        """mu, cond, x (the initial noise): (B, 80, T); spks: (B, 80) -> mel (B, 80, T)."""
        b = x.shape[0]
        t_span = cosine_t_span(n_timesteps, mu.device, mu.dtype)
        # The unconditional half zeroes every condition; x and t are shared.
        mu_in = torch.cat([mu, torch.zeros_like(mu)])
        spks_in = torch.cat([spks, torch.zeros_like(spks)])
        cond_in = torch.cat([cond, torch.zeros_like(cond)])
        rate = self.inference_cfg_rate
        # t advances by accumulating dt, and dt is re-derived from the grid, as the reference does.
        t, dt = t_span[:1], t_span[1] - t_span[0]
        for step in range(1, len(t_span)):
            v = self.estimator(torch.cat([x, x]), mu_in, t.expand(2 * b), spks_in, cond_in)
            v_cond, v_uncond = v.split([b, b])
            x = x + dt * ((1.0 + rate) * v_cond - rate * v_uncond)
            t = t + dt
            if step < len(t_span) - 1:
                dt = t_span[step + 1] - t
        return x


class CausalMaskedDiffWithXvec(nn.Module):
    def __init__(self, cfg: FlowConfig):
        super().__init__()
        if cfg.output_type != "mel":
            raise ModelFileError(
                f"cosyvoice.yaml sets flow.output_type = {cfg.output_type!r}; this pack implements 'mel' only. "
                "Use the CosyVoice-300M-25Hz folder of Step-Audio-EditX."
            )
        self.cfg = cfg
        self.up_rate = cfg.encoder.up_stride
        self.input_embedding = DualCodebookEmbedding(cfg.vocab_size, cfg.input_size)
        self.spk_embed_affine_layer = nn.Linear(cfg.spk_embed_dim, cfg.output_size)
        self.encoder = UpsampleConformerEncoderV2(cfg.encoder)
        self.encoder_proj = nn.Linear(cfg.encoder.output_size, cfg.output_size)
        self.decoder = CausalConditionalCFM(DiT(cfg.estimator), cfg.inference_cfg_rate)

    def _check(self, token: Tensor, prompt_token: Tensor, prompt_feat: Tensor, embedding: Tensor, n_timesteps: int):
        b = token.shape[0] if token.dim() == 3 else None
        for name, ts in (("token", token), ("prompt_token", prompt_token)):
            if ts.dim() != 3 or ts.shape[0] != b or ts.shape[2] != 2 or ts.is_floating_point():
                raise InputError(
                    f"{name} must be integer ids of shape (B, T, 2) with the same B as token; got {tuple(ts.shape)} "
                    f"{ts.dtype}. Convert mixed LM tokens with reshape_mixed_tokens first."
                )
        if token.shape[1] == 0:
            raise InputError("token is empty: there is nothing to decode")
        if int(torch.cat([prompt_token, token], dim=1).max()) >= self.cfg.vocab_size:
            raise InputError(f"token ids must be below {self.cfg.vocab_size} (the flow's vocabulary); some are not")
        want = (b, self.up_rate * prompt_token.shape[1], self.cfg.output_size)
        if tuple(prompt_feat.shape) != want:
            raise InputError(
                f"prompt_feat must be (B, {self.up_rate} * prompt frames, {self.cfg.output_size}) = {want}; got "
                f"{tuple(prompt_feat.shape)}. Align the prompt mel to the prompt tokens first."
            )
        if tuple(embedding.shape) != (b, self.cfg.spk_embed_dim):
            raise InputError(f"embedding must be (B, {self.cfg.spk_embed_dim}); got {tuple(embedding.shape)}")
        if int(n_timesteps) < 1:
            raise InputError(f"n_timesteps must be at least 1; got {n_timesteps}")

    @torch.inference_mode()
    def inference(
        self,
        token: Tensor,
        prompt_token: Tensor,
        prompt_feat: Tensor,
        embedding: Tensor,
        *,
        n_timesteps: int = 10,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Target tokens (B, T, 2) in the voice of the prompt -> mel (B, 80, 2T).

        prompt_token (B, Tp, 2) and prompt_feat (B, 2*Tp, 80) are the prompt's tokens and its mel
        aligned to them; embedding (B, 192) is the raw CAM++ x-vector. ``noise`` is the ODE's
        initial state (B, 80, >= 2*(Tp+T)), of which the first 2*(Tp+T) frames are used; without
        it, randn(B, L, 80) is drawn from ``generator`` and transposed, so one seed gives the same
        noise on every common prefix of frames.
        """
        self._check(token, prompt_token, prompt_feat, embedding, n_timesteps)
        weight = self.spk_embed_affine_layer.weight
        dtype, device = weight.dtype, weight.device
        spks = self.spk_embed_affine_layer(F.normalize(embedding.to(device, dtype), dim=1))

        tokens = torch.cat([prompt_token, token], dim=1).to(device)
        h = self.encoder(self.input_embedding(tokens.clamp(min=0)))
        mu = self.encoder_proj(h)  # (B, L, 80), L = 2 * (Tp + T)

        b, length, channels = mu.shape
        prompt_len = prompt_feat.shape[1]
        cond = torch.zeros_like(mu)
        cond[:, :prompt_len] = prompt_feat.to(device, dtype)

        if noise is None:
            if generator is None:
                raise InputError("flow inference needs its initial noise: pass a torch.Generator or a noise tensor")
            noise = torch.randn(b, length, channels, generator=generator, device=generator.device, dtype=torch.float32)
            noise = noise.transpose(1, 2)
        elif noise.dim() != 3 or noise.shape[0] != b or noise.shape[1] != channels or noise.shape[2] < length:
            raise InputError(f"noise must be (B, {channels}, >= {length}) = ({b}, {channels}, >= {length}); got {tuple(noise.shape)}")
        x0 = noise[:, :, :length].to(device, dtype)

        feat = self.decoder(mu.transpose(1, 2), spks, cond.transpose(1, 2), x0, n_timesteps=int(n_timesteps))
        return feat[:, :, prompt_len:]


def load_flow(path: str | os.PathLike, cfg: FlowConfig) -> CausalMaskedDiffWithXvec:
    """Build the flow from ``cfg`` and load ``flow.pt`` strictly, on the CPU in fp32, in eval mode."""
    state_dict = load_torch_state_dict(path, "flow.pt (flow decoder weights)")
    with torch.device("meta"):
        model = CausalMaskedDiffWithXvec(cfg)
    # Skip random init of ~150M parameters: every one of them is overwritten by the strict load.
    model = model.to_empty(device="cpu")
    load_strict(model, state_dict, path, "flow.pt (flow decoder weights)")
    return model.float().eval()
