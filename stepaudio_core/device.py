"""Choosing a device and dtype the same way everywhere (CLI, nodes, benchmarks)."""

from __future__ import annotations

import torch

from .errors import InputError
from .limits import DEVICES, DTYPES

_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.split(":")[0] not in DEVICES:
        raise InputError(f"unknown device '{name}'; choose one of {', '.join(DEVICES)}")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' was asked for, but this PyTorch build sees no CUDA GPU; choose 'cpu' or 'auto'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device '{name}' was asked for, but MPS is not available here; choose 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device '{name}'; choose one of {', '.join(DEVICES)}")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The LM's compute dtype. 'auto' is bf16 where the device computes it natively, else fp32."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in _DTYPE:
        raise InputError(f"unknown dtype '{name}'; choose one of {', '.join(DTYPES)}")
    return _DTYPE[name]
