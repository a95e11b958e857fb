"""Typed configuration of the Step1 LM, read from the released ``config.json``.

The release's ``configuration_step1.py`` fills missing keys with the defaults of a much larger
model (hidden 5120, 48 layers, ...), which would only fail later as a shape mismatch; we require
every size key instead. ``tie_word_embeddings`` is ignored on purpose: the checkpoint's
``lm_head`` is trained separately and is never tied (docs lm.md 4.5).
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch

from ..errors import ModelFileError

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Step1Config:
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_attention_groups: int
    num_hidden_layers: int
    vocab_size: int
    rms_norm_eps: float = 1e-5
    max_seq_len: int = 32768
    bos_token_id: int = 1
    eos_token_id: int = 3
    pad_token_id: int = 0
    torch_dtype: str = "bfloat16"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.torch_dtype]

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> Step1Config:
        if d.get("model_type", "step1") != "step1":
            raise ModelFileError(
                f"{source} describes a '{d.get('model_type')}' model, not Step1 (model_type 'step1'). "
                "Point the loader at the Step-Audio-EditX folder."
            )
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ModelFileError(f"{source} lacks {', '.join(missing)}. Download config.json of the release again.")
        cfg = cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
        if cfg.torch_dtype not in _DTYPES:
            raise ModelFileError(f"{source}: torch_dtype '{cfg.torch_dtype}' is not one of {sorted(_DTYPES)}")
        if cfg.hidden_size % cfg.num_attention_heads or cfg.num_attention_heads % cfg.num_attention_groups:
            raise ModelFileError(
                f"{source}: hidden_size {cfg.hidden_size}, num_attention_heads {cfg.num_attention_heads} and "
                f"num_attention_groups {cfg.num_attention_groups} do not divide evenly; the file is damaged."
            )
        return cfg

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Step1Config:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(
                f"LM config not found: {path}. The Step-Audio-EditX folder must hold config.json."
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelFileError(f"LM config {path} is not valid JSON ({e}). Download it again.") from None
        if not isinstance(d, dict):
            raise ModelFileError(f"LM config {path} is not a JSON object. Download it again.")
        return cls.from_dict(d, source=str(path))
