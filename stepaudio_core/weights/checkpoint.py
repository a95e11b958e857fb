"""Reading weight files safely, and loading them strictly.

Every format quirk of the released files is handled by the loaders of each component; this
module holds what they share: refusing Git LFS pointers and truncated files with a message
that names the file, unpickling with ``weights_only=True`` only, and strict loading that
lists missing and unexpected keys by name.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelFileError

_LFS_MAGIC = b"version https://git-lfs.github.com/spec"


def check_model_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it looks like a real weight file, else raise ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{what} not found: {path}. Download the model files (see README, 'Model files') "
            "or point the loader at the folder that holds them."
        )
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{what} is empty: {path}. Delete it and download it again.")
    if size < 1024:
        with open(path, "rb") as f:
            head = f.read(len(_LFS_MAGIC))
        if head == _LFS_MAGIC:
            raise ModelFileError(
                f"{what} is a Git LFS pointer, not the weights: {path}. The repository was cloned "
                "without LFS; run 'git lfs pull' in it or download the file with huggingface-hub."
            )
    return path


def load_torch_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """``torch.load`` a plain state dict with ``weights_only=True`` (no code from the file runs)."""
    path = check_model_file(path, what)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (MemoryError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # damaged bytes surface as any of a dozen unpickling and zip errors
        text = str(e)
        if "weights_only" in text or "Weights only" in text or "Unsupported global" in text:
            found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
            names = f" (it names {found.group(1)})" if found else ""
            raise ModelFileError(
                f"{what} at {path} holds Python objects besides tensors{names} and was refused without "
                "running any of it. Weight files need none: delete it and use the file from the official release."
            ) from None
        reason = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise ModelFileError(
            f"{what} at {path} is truncated or corrupt ({reason}). Delete it and download it again."
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(
            f"{what} at {path} is not a plain state dict of tensors. Use the file from the "
            "official release."
        )
    return obj


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike, what: str) -> None:
    """Load every key or none: a partial model is an error that names the keys and the file."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if names:
                more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
                parts.append(f"{len(names)} {label}: {', '.join(names[:5])}{more}")
        raise ModelFileError(
            f"{what} at {path} does not match the model built from its config: {'; '.join(parts)}. "
            "The file and the config come from different releases, or the file is damaged; "
            "download both again."
        )
    module.load_state_dict(state_dict, strict=True)
