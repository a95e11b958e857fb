"""The facade: one handle over a model folder, loading each component on first use.

The CLI, the ComfyUI nodes and Python users all go through this class, so a feature behaves
the same wherever it is used. Components load on the CPU; right before one is used, the
``placer`` brings it to the compute device. By default that is a plain ``.to(device)``; the
ComfyUI adapter passes its model management instead, so ComfyUI decides what occupies VRAM
and "Unload models" frees ours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .bundle import Bundle, find_bundle
from .device import resolve_device, resolve_dtype
from .errors import InputError
from .prompt import EncodedPrompt, GeneratedTokens

Placer = Callable[[str, nn.Module], None]


class StepAudioEditX:
    def __init__(self, models_dir: str | Path, *, device: str = "auto", dtype: str = "auto", placer: Placer | None = None):
        self.bundle: Bundle = find_bundle(models_dir)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.placer = placer or (lambda name, module: module.to(self.device))
        self._components: dict[str, nn.Module] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"StepAudioEditX({str(self.bundle.root)!r}, device={self.device.type}, dtype={self.dtype})"

    @property
    def sample_rate(self) -> int:
        return 24000

    def loaded(self) -> dict[str, nn.Module]:
        """The components loaded so far, by name."""
        return dict(self._components)

    def component(self, name: str) -> nn.Module:
        """Load ``name`` on the CPU on first use (once, even with concurrent callers) and place it."""
        with self._lock:
            if name not in self._components:
                self._components[name] = self._load(name)
            module = self._components[name]
        self.placer(name, module)
        return module

    def _load(self, name: str) -> nn.Module:
        if name == "decoder":
            from .decoder.token2wav import Decoder

            # fp32, as the reference runs its decoder: bf16 flow is a speed option, not the default.
            return Decoder.from_folder(self.bundle.require_decoder())
        raise KeyError(name)

    def unload(self) -> None:
        """Drop every loaded component; the next use loads it again."""
        with self._lock:
            self._components.clear()

    @property
    def decoder(self):
        return self.component("decoder")

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
