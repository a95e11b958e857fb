"""The facade: one handle over a model folder, loading each component on first use.

The CLI, the ComfyUI nodes and Python users all go through this class, so a feature behaves
the same wherever it is used. Components load on the CPU first and then move to the device,
which lets a host (ComfyUI's model management) decide when they occupy accelerator memory.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from .bundle import Bundle, find_bundle
from .device import resolve_device, resolve_dtype
from .errors import InputError
from .prompt import EncodedPrompt, GeneratedTokens


class StepAudioEditX:
    def __init__(self, models_dir: str | Path, *, device: str = "auto", dtype: str = "auto"):
        self.bundle: Bundle = find_bundle(models_dir)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._decoder = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StepAudioEditX({str(self.bundle.root)!r}, device={self.device.type}, dtype={self.dtype})"

    @property
    def sample_rate(self) -> int:
        return 24000

    @property
    def decoder(self):
        """The flow + HiFT + CAM++ decoder, loaded on first use (fp32, as the reference runs it)."""
        with self._lock:
            if self._decoder is None:
                from .decoder.token2wav import Decoder

                self._decoder = Decoder.from_folder(self.bundle.require_decoder()).to(self.device)
            return self._decoder

    def unload(self) -> None:
        """Drop every loaded component; the next call loads them again."""
        with self._lock:
            self._decoder = None

    def decode(
        self,
        tokens: GeneratedTokens,
        *,
        prompt: EncodedPrompt | None = None,
        seed: int = 0,
        flow_steps: int = 10,
    ) -> torch.Tensor:
        """Tokens -> float32 mono waveform (N,) at 24 kHz, in the voice of ``prompt`` (default: their own)."""
        prompt = prompt or tokens.prompt
        if prompt is None:
            raise InputError("decoding needs the prompt the tokens were generated for (its voice and mel)")
        if not 1 <= flow_steps <= 100:
            raise InputError(f"flow_steps must be between 1 and 100; got {flow_steps}")
        return self.decoder(tokens.tokens, prompt.tokens, prompt.mel, prompt.speaker, seed=seed, n_timesteps=flow_steps)
