"""Our components under ComfyUI's model management.

Each component the core loads (decoder, tokenizer, LM) gets its own ``ModelPatcher``, and is
loaded through ``load_models_gpu`` right before use - the same path ComfyUI's own audio encoders
take. ComfyUI can then offload it when another model needs the VRAM, and "Unload models" /
``POST /free`` frees it. We never unload anything ourselves: other packs' models are not ours.
"""

from __future__ import annotations

import comfy.model_management as mm
import comfy.model_patcher
import torch
from torch import nn


class ComfyPlacer:
    """The core's ``placer`` hook, backed by ModelPatchers (one per component)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.patchers: dict[str, comfy.model_patcher.ModelPatcher] = {}

    def __call__(self, name: str, module: nn.Module) -> None:
        patcher = self.patchers.get(name)
        if patcher is None or patcher.model is not module:
            patcher = comfy.model_patcher.ModelPatcher(module, load_device=self.device, offload_device=mm.unet_offload_device())
            self.patchers[name] = patcher
        mm.load_models_gpu([patcher])

    def loaded_bytes(self) -> int:
        """Bytes of our weights ComfyUI currently holds on the load device."""
        return sum(p.loaded_size() for p in self.patchers.values())


def comfy_device(choice: str) -> torch.device:
    """'auto' defers to ComfyUI's choice (which honours --cpu and friends)."""
    from ..stepaudio_core.device import resolve_device
    from ..stepaudio_core.errors import InputError
    from ..stepaudio_core.limits import DEVICES

    if choice not in DEVICES:
        raise InputError(f"unknown device '{choice}'; choose one of {', '.join(DEVICES)}")
    return mm.get_torch_device() if choice == "auto" else resolve_device(choice)


def comfy_dtype(choice: str, device: torch.device) -> str:
    if choice != "auto":
        return choice
    return "bf16" if device.type != "cpu" and mm.should_use_bf16(device) else "fp32"
