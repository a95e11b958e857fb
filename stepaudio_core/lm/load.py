"""Loading the released Step1 LM: ``config.json`` + safetensors, strictly, never tied.

The release ships one shard named ``model-00001.safetensors`` with a
``model.safetensors.index.json``; a plain ``model.safetensors`` works too. The model is built
without initialising any weight, then every tensor is copied from the memory-mapped files, so
the CPU holds one copy of the weights (in the requested dtype), never two.

bitsandbytes int8 / nf4 for the decoder layers' Linear layers is optional and imported only when
asked for; embeddings, norms and ``lm_head`` stay unquantized, as in the reference.

A folder whose ``config.json`` has a ``quantization_config`` (the AWQ release) is pre-quantized: its
Linears load packed (``awq.py``), stay packed on CUDA and are dequantized at load elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import InputError, ModelFileError
from ..weights.checkpoint import check_model_file, load_strict
from .awq import check_packed, dequantize_packed_, read_quantization_config, replace_with_packed
from .config import Step1Config
from .model import Step1ForCausalLM

INDEX_FILE = "model.safetensors.index.json"
QUANTIZE_MODES = ("int8", "nf4")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files that hold the LM's weights, per the index if there is one."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ModelFileError(f"{index} is not a valid safetensors index ({e}). Download it again.") from None
        return [folder / n for n in names]
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise ModelFileError(
            f"no LM weights in {folder}: expected {INDEX_FILE} with its model-*.safetensors shard(s), or "
            "model.safetensors. Download the Step-Audio-EditX model folder."
        )
    return files


def read_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    """All tensors of ``files``; on the CPU they stay memory-mapped until copied into the model."""
    tensors: dict[str, torch.Tensor] = {}
    for path in files:
        check_model_file(path, "LM weights")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():
                    if key in tensors:
                        raise ModelFileError(f"{key} is stored twice (again in {path}); the shards do not match.")
                    tensors[key] = f.get_tensor(key)
        except (SafetensorError, OSError) as e:
            raise ModelFileError(f"LM weights {path} are truncated or not safetensors ({e}). Download again.") from None
    return tensors


def load_step1(
    folder: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    quantize: str | None = None,
    keep_packed: bool | None = None,
) -> Step1ForCausalLM:
    """The Step1 LM of a Step-Audio-EditX folder, in eval mode.

    ``dtype`` defaults to the config's ``torch_dtype`` (bfloat16 in the release). ``quantize``
    is None (or "none"), "int8" or "nf4" (bitsandbytes, CUDA only; checked before any weight is read).
    A pre-quantized folder keeps its Linears packed if ``keep_packed`` (default: ``device`` is CUDA),
    else they are dequantized to ``dtype`` at load.
    """
    folder = Path(folder)
    quantize = None if quantize in (None, "", "none") else quantize
    cfg = Step1Config.from_json(folder / "config.json")
    packed = read_quantization_config(folder / "config.json")
    if packed is not None and quantize is not None:
        raise InputError(
            f"{folder.name} is already quantized ({packed.num_bits}-bit, in its config.json); set quantization to "
            "'none' to load it, or pick the full-precision Step-Audio-EditX folder to quantize with bitsandbytes."
        )
    bnb = _bitsandbytes(quantize, torch.device(device)) if quantize is not None else None
    dtype = dtype or cfg.dtype
    files = weight_files(folder)
    tensors = read_weights(files)
    with torch.device("meta"):
        model = Step1ForCausalLM(cfg)
    model = model.to(dtype)
    if packed is not None:  # scales keep the file's dtype, so dequantizing rounds once, as the library does
        scale_dtype = next((t.dtype for k, t in tensors.items() if k.endswith(".weight_scale")), dtype)
        replace_with_packed(model, packed, scale_dtype)
    # allocate without initialising: every value is overwritten by the strict load below
    model = model.to_empty(device="cpu" if bnb is not None or packed is not None else device)
    load_strict(model, tensors, folder, "LM weights")
    del tensors  # the file's copy: dequantizing below should not find it still held
    model.eval().requires_grad_(False)
    if packed is not None:
        check_packed(model, folder)
        if not (torch.device(device).type == "cuda" if keep_packed is None else keep_packed):
            dequantize_packed_(model, dtype)
        model.to(device)
    if bnb is not None:
        _quantize_layers(bnb, model, quantize, torch.device(device), dtype)
    return model


def _bitsandbytes(mode: str, device: torch.device):
    """The bitsandbytes module, checked before any weight is read."""
    if mode not in QUANTIZE_MODES:
        raise InputError(f"quantize must be one of {QUANTIZE_MODES} or None, not {mode!r}")
    try:
        import bitsandbytes
    except ImportError:
        raise InputError(
            f"quantize='{mode}' needs the bitsandbytes package, which is not installed. Install it "
            "(pip install bitsandbytes) or load the LM without quantization."
        ) from None
    if device.type != "cuda":
        raise InputError(f"bitsandbytes {mode} runs on CUDA GPUs only, not on '{device}'. Load without quantization.")
    return bitsandbytes


def _quantize_layers(bnb, model: Step1ForCausalLM, mode: str, device: torch.device, dtype: torch.dtype) -> None:
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, nn.Linear):
                    continue
                w = lin.weight.data
                if mode == "int8":
                    q = bnb.nn.Linear8bitLt(
                        lin.in_features, lin.out_features, bias=False, has_fp16_weights=False, threshold=6.0
                    )
                    q.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
                else:
                    q = bnb.nn.Linear4bit(
                        lin.in_features, lin.out_features, bias=False, compute_dtype=dtype, quant_type="nf4",
                        compress_statistics=True,
                    )
                    q.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4", compress_statistics=True)
                setattr(parent, name, q)
    model.to(device)  # bitsandbytes quantizes the weights as they move to the GPU


def quantize_(model: Step1ForCausalLM, mode: str, device: str | torch.device, dtype: torch.dtype) -> Step1ForCausalLM:
    """Quantize a model held on the CPU with bitsandbytes ("int8" or "nf4") and move it to ``device`` (CUDA)."""
    device = torch.device(device)
    _quantize_layers(_bitsandbytes(mode, device), model, mode, device, dtype)
    return model
