"""Audio tokens to 24 kHz speech: the reference's ``token2wav_nonstream``, in one place.

The LM speaks in groups of five ids, [vq02, vq02, vq06, vq06, vq06] (minus 65536). The flow
wants them time-aligned at 25 Hz as (T, 2) pairs; the prompt's mel (from the untrimmed audio)
is stretched onto twice the prompt's token frames by nearest interpolation, exactly as the
reference does, then flow -> mel -> HiFT -> waveform.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..codes import GROUP, MIXED_CODES, VQ02_CODES
from ..errors import InputError, ModelFileError
from .config import DecoderConfig

VQ02_PAD = 1024  # the flow's pad id in the vq02 column (row 1024 of the shared table)
_TAIL_PAD = (0, 0, 0, VQ02_PAD, VQ02_PAD, VQ02_PAD)


def reshape_mixed_tokens(mixed: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Mixed ids (0..1023 vq02, 1024..5119 vq06) in groups of 5 -> (T, 2) flow ids, T = 3 per group.

    A partial last group is completed with the tail of (0, 0, 0, 1024, 1024, 1024), as the
    reference does; vq06 ids become code + 1025 so both columns index one table of 5121 rows.
    """
    ids = [int(x) for x in (mixed.flatten().tolist() if isinstance(mixed, torch.Tensor) else mixed)]
    if not ids:
        raise InputError("there are no audio tokens to decode (the token list is empty)")
    if len(ids) % GROUP:
        ids += _TAIL_PAD[-(GROUP - len(ids) % GROUP) :]
    groups = torch.tensor(ids, dtype=torch.long).view(-1, GROUP)
    vq02, vq06 = groups[:, :2], groups[:, 2:]
    if (vq02 < 0).any() or (vq02 >= VQ02_CODES + 1).any() or (vq06 < VQ02_CODES).any() or (vq06 >= MIXED_CODES).any():
        raise InputError(
            "audio tokens are out of range: each group of five must be two vq02 ids (0..1023) followed by three "
            "vq06 ids (1024..5119); the tokens were not produced by this model's tokenizer or LM"
        )
    col0 = torch.cat([vq02, torch.full((len(groups), 1), VQ02_PAD)], dim=1).flatten()
    col1 = (vq06 + 1).flatten()
    return torch.stack([col0, col1], dim=1)


def align_prompt_mel(prompt_mel: torch.Tensor, prompt_frames: int) -> torch.Tensor:
    """Nearest-resample the prompt mel (B, T_mel, 80) to exactly 2 frames per prompt token frame."""
    return F.interpolate(prompt_mel.transpose(1, 2), size=2 * prompt_frames, mode="nearest").transpose(1, 2)


class Decoder(nn.Module):
    """The released CosyVoice-300M-25Hz decoder: flow + HiFT + CAM++ + the prompt-mel front end.

    One module, so a host can move it between devices as a whole; every method runs on the
    device its weights are on at call time.
    """

    def __init__(self, cfg: DecoderConfig, flow: nn.Module, hift: nn.Module, campplus: nn.Module | None = None):
        super().__init__()
        self.cfg, self.flow, self.hift, self.campplus = cfg, flow, hift, campplus

    @classmethod
    def from_folder(cls, folder: str | Path, *, load_campplus: bool = True) -> Decoder:
        """Load ``cosyvoice.yaml``, ``flow.pt``, ``hift.pt`` (and ``campplus.onnx``) on the CPU, fp32."""
        from .campplus_onnx import load_campplus
        from .flow import load_flow
        from .hift import load_hift

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFileError(
                f"decoder folder not found: {folder}. It is the CosyVoice-300M-25Hz folder inside Step-Audio-EditX."
            )
        cfg = DecoderConfig.from_yaml(folder / "cosyvoice.yaml")
        flow = load_flow(folder / "flow.pt", cfg.flow)
        hift = load_hift(folder / "hift.pt", cfg.hift)
        campplus = load_campplus(folder / "campplus.onnx") if load_campplus else None
        return cls(cfg, flow, hift, campplus).eval()

    @property
    def device(self) -> torch.device:
        """Where the weights are now (a host may have moved them)."""
        return next(self.flow.parameters()).device

    @device.setter
    def device(self, value) -> None:
        # ComfyUI's ModelPatcher assigns the device it moved the module to; the getter reports the truth.
        pass

    @property
    def sample_rate(self) -> int:
        return self.cfg.hift.sampling_rate

    @torch.inference_mode()
    def prompt_features(self, wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt's mel (1, T, 80) at 24 kHz and CAM++ x-vector (1, 192) from a mono waveform (N,).

        ``wav`` is the prompt as the reference feeds it: mono, peak-capped at 0.6, untrimmed.
        """
        from ..audio import resample
        from ..features import matcha_mel
        from .campplus import speaker_embedding

        if self.campplus is None:
            raise ModelFileError("this decoder was loaded without campplus.onnx, so it cannot embed a speaker")
        wav = wav.float().flatten().cpu()
        mel_cfg = self.cfg.mel
        wav_mel = resample(wav, sample_rate, mel_cfg.sampling_rate) if sample_rate != mel_cfg.sampling_rate else wav
        mel = matcha_mel(wav_mel[None].to(self.device), mel_cfg)
        # CosyVoice's front end uses torchaudio.functional.resample, whose kernel is built in float32
        # (the tokenizer path uses transforms.Resample, float64): the quiet fbank bins notice the difference.
        wav_16k = resample(wav, sample_rate, 16000, kernel_dtype=torch.float32) if sample_rate != 16000 else wav
        embedding = speaker_embedding(self.campplus, wav_16k.to(self.device))
        return mel, embedding

    @torch.inference_mode()
    def forward(
        self,
        tokens: Sequence[int] | torch.Tensor,
        prompt_tokens: Sequence[int] | torch.Tensor,
        prompt_mel: torch.Tensor,
        embedding: torch.Tensor,
        *,
        seed: int = 0,
        n_timesteps: int = 10,
        bf16_conditioning: bool = True,
    ) -> torch.Tensor:
        """Mixed tokens (ids - 65536) -> float32 mono waveform (N,) at 24 kHz on the CPU.

        ``bf16_conditioning`` rounds the prompt mel and x-vector through bfloat16 before use, as the
        released ``tts.py`` does; turn it off to condition on the exact fp32 values.
        ``seed`` drives every random draw (the CFM's initial noise and HiFT's source noise), so the
        same seed reproduces a waveform exactly on the same device.
        """
        device = self.device
        generator = torch.Generator(device=device).manual_seed(int(seed))
        token = reshape_mixed_tokens(tokens)[None].to(device)
        prompt_token = reshape_mixed_tokens(prompt_tokens)[None].to(device)
        if prompt_mel.dim() != 3 or prompt_mel.shape[-1] != self.cfg.flow.output_size:
            raise InputError(f"prompt mel must be (1, T, {self.cfg.flow.output_size}); got {tuple(prompt_mel.shape)}")
        if embedding.numel() != self.cfg.flow.spk_embed_dim:
            raise InputError(f"speaker embedding must have {self.cfg.flow.spk_embed_dim} values; got {embedding.numel()}")
        prompt_mel = prompt_mel.to(device).reshape(1, -1, prompt_mel.shape[-1])
        embedding = embedding.to(device).reshape(1, -1)
        if bf16_conditioning:
            prompt_mel, embedding = prompt_mel.bfloat16(), embedding.bfloat16()
        dtype = next(self.flow.parameters()).dtype
        prompt_feat = align_prompt_mel(prompt_mel.to(dtype), prompt_token.shape[1])
        mel = self.flow.inference(
            token, prompt_token, prompt_feat, embedding.to(dtype), n_timesteps=n_timesteps, generator=generator
        )
        speech, _ = self.hift.inference(mel.float(), generator=generator)
        return speech[0].float().cpu()
