"""Pre-quantized Step1 checkpoints: the compressed-tensors "pack-quantized" format llmcompressor writes.

The reference's ``quantization/awq_quantize.py`` (and the published Step-Audio-EditX-AWQ-4bit) saves
every decoder-layer Linear as four tensors, named after the Linear:

    weight_packed      int32 [out, in * bits / 32]   codes + 2^(bits-1), little end first in each word
    weight_scale       [out, groups]                  the model dtype; groups = in / group_size (1: per channel)
    weight_zero_point  int32 [out * bits / 32, groups] asymmetric schemes only; packed along the OUTPUT rows
    weight_shape       int64 [2]                      [out, in]

and the weight is ``(code - zero_point) * scale`` per group (zero_point 0 when symmetric). ``lm_head``
(the ``ignore`` list) stays a plain full-precision Linear. AWQ's smoothing is already folded into the
norms and weights, so nothing else differs from the full-precision model.

``PackedLinear`` holds those four tensors under those names, so the checkpoint loads with one strict
``load_state_dict``, and dequantizes just in time in each forward (CUDA: the weights stay 4-bit in
memory). ``dequantize_packed_`` turns every PackedLinear back into a plain Linear in a given dtype
(CPU and MPS, where a per-call dequantization would only cost time).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError

FORMAT = "pack-quantized"


@dataclass(frozen=True)
class PackQuantConfig:
    """The parts of ``config.json``'s ``quantization_config`` that decide how weights unpack."""

    num_bits: int  # 4 (W4A16) or 8 (W8A16)
    group_size: int | None  # None: one scale per output channel ("channel" strategy)
    symmetric: bool
    ignore: tuple[str, ...]  # module names (or "re:" patterns) left in full precision

    @property
    def per_word(self) -> int:
        return 32 // self.num_bits

    def groups(self, in_features: int) -> int:
        return 1 if self.group_size is None else in_features // self.group_size

    def is_ignored(self, name: str) -> bool:
        for pattern in self.ignore:
            if pattern.startswith("re:"):
                if re.match(pattern[3:], name):
                    return True
            elif pattern == name:
                return True
        return False

    @classmethod
    def from_dict(cls, q: dict, source: str) -> PackQuantConfig:
        """Validate ``quantization_config``; anything we cannot run exactly is an error naming its key."""

        def bad(key: str, value, want: str) -> ModelFileError:
            return ModelFileError(
                f"{source}: quantization_config.{key} is {value!r}, but only {want} can be loaded. This folder was "
                "quantized with another scheme; use the Step-Audio-EditX-AWQ-4bit release or the full-precision "
                "Step-Audio-EditX folder."
            )

        if not isinstance(q, dict):
            raise bad("", type(q).__name__, "a JSON object")
        if q.get("quant_method") != "compressed-tensors":
            raise bad("quant_method", q.get("quant_method"), "'compressed-tensors' (llmcompressor's format)")
        if q.get("format") != FORMAT:
            raise bad("format", q.get("format"), f"'{FORMAT}'")
        if q.get("quantization_status", "compressed") != "compressed":
            raise bad("quantization_status", q.get("quantization_status"), "'compressed'")
        for key in ("sparsity_config", "transform_config", "kv_cache_scheme"):
            if q.get(key):
                raise bad(key, q[key], "empty (no sparsity, transforms or KV-cache quantization)")
        groups = q.get("config_groups")
        if not isinstance(groups, dict) or len(groups) != 1:
            raise bad("config_groups", groups, "exactly one group")
        ((name, group),) = groups.items()
        where = f"config_groups.{name}"
        if not isinstance(group, dict):
            raise bad(where, group, "a JSON object")
        if group.get("format") not in (None, FORMAT):  # null: the top-level format applies
            raise bad(f"{where}.format", group.get("format"), f"'{FORMAT}'")
        if group.get("targets") != ["Linear"]:
            raise bad(f"{where}.targets", group.get("targets"), "['Linear']")
        for key in ("input_activations", "output_activations"):
            if group.get(key) is not None:
                raise bad(f"{where}.{key}", group[key], "null (weight-only quantization, W4A16 / W8A16)")
        w = group.get("weights")
        if not isinstance(w, dict):
            raise bad(f"{where}.weights", w, "a JSON object")
        if w.get("type", "int") != "int":
            raise bad(f"{where}.weights.type", w.get("type"), "'int'")
        if w.get("num_bits") not in (4, 8):
            raise bad(f"{where}.weights.num_bits", w.get("num_bits"), "4 or 8")
        if w.get("dynamic", False) or w.get("actorder") is not None or w.get("block_structure") is not None:
            raise bad(
                f"{where}.weights",
                {k: w.get(k) for k in ("dynamic", "actorder", "block_structure")},
                "static weights without activation order or blocks",
            )
        if not isinstance(w.get("symmetric"), bool):
            raise bad(f"{where}.weights.symmetric", w.get("symmetric"), "true or false")
        strategy, size = w.get("strategy"), w.get("group_size")
        if strategy == "group":
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise bad(f"{where}.weights.group_size", size, "a positive integer")
        elif strategy == "channel":
            size = None
        else:
            raise bad(f"{where}.weights.strategy", strategy, "'group' or 'channel'")
        ignore = q.get("ignore", [])
        if not isinstance(ignore, list) or not all(isinstance(s, str) for s in ignore):
            raise bad("ignore", ignore, "a list of module names")
        return cls(num_bits=w["num_bits"], group_size=size, symmetric=w["symmetric"], ignore=tuple(ignore))


def read_quantization_config(config_json: Path) -> PackQuantConfig | None:
    """The folder's quantization, or None for a full-precision folder (``config.json`` is already checked)."""
    d = json.loads(Path(config_json).read_text(encoding="utf-8"))
    q = d.get("quantization_config")
    return None if q is None else PackQuantConfig.from_dict(q, str(config_json))


def unpacked_fields(packed: torch.Tensor, num_bits: int, length: int) -> torch.Tensor:
    """The unsigned fields (code + 2^(num_bits-1)) of each row's words, ``length`` per row.

    Field i of word j holds element ``j * per_word + i`` in bits ``i*num_bits ..``. 4- and 8-bit
    fields sit whole in the word's bytes, so on little-endian machines (x86, ARM, every GPU) they are
    read from a byte view, uint8, without an int32 temporary per field.
    """
    rows = packed.shape[0]
    if sys.byteorder == "little" or packed.device.type != "cpu":
        b = packed.contiguous().view(torch.uint8)  # byte k of word j at column 4j + k
        if num_bits == 8:
            return b[:, :length]
        return torch.stack((b & 0xF, b >> 4), dim=-1).view(rows, -1)[:, :length]
    shifts = torch.arange(0, 32, num_bits, dtype=torch.int32, device=packed.device)
    # an arithmetic right shift of a negative word fills with ones; the mask drops them
    fields = (packed.unsqueeze(-1) >> shifts) & ((1 << num_bits) - 1)
    return fields.view(rows, -1)[:, :length]


def unpack_int32(packed: torch.Tensor, num_bits: int, length: int, dim: int = 1) -> torch.Tensor:
    """Signed codes (int32) from int32 words packed along ``dim``, ``length`` of them."""
    if dim == 0:
        packed = packed.t()
    codes = unpacked_fields(packed, num_bits, length).to(torch.int32) - (1 << (num_bits - 1))
    return codes.t() if dim == 0 else codes


def dequantize(
    packed: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | None,
    shape: tuple[int, int],
    cfg: PackQuantConfig,
) -> torch.Tensor:
    """The weight [out, in] in ``scale``'s dtype: (code - zero_point) * scale, per group of columns.

    As the library computes it, in the scale's dtype: code - zero_point is a small integer, exact in
    any float type, and the product rounds once. Both are offset by 2^(bits-1), so the stored
    fields subtract directly.
    """
    out, n_in = shape
    groups = scale.shape[1]
    w = unpacked_fields(packed, cfg.num_bits, n_in).view(out, groups, n_in // groups).to(scale.dtype)
    if zero_point is None:
        w = w - (1 << (cfg.num_bits - 1))
    else:
        zp = unpacked_fields(zero_point.t(), cfg.num_bits, out).t()  # packed along the output rows
        w = w - zp.to(scale.dtype).unsqueeze(-1)
    return (w * scale.unsqueeze(-1)).view(out, n_in)


class PackedLinear(nn.Module):
    """A bias-free Linear whose weight stays packed; attribute names equal the checkpoint keys."""

    def __init__(self, in_features: int, out_features: int, cfg: PackQuantConfig, scale_dtype: torch.dtype):
        super().__init__()
        if cfg.group_size is not None and in_features % cfg.group_size:
            raise ValueError(f"in_features {in_features} is not a multiple of the group size {cfg.group_size}")
        self.in_features, self.out_features, self.cfg = in_features, out_features, cfg
        groups = cfg.groups(in_features)

        def frozen(*shape, dtype):  # Parameters, not buffers: ComfyUI's model management moves parameters
            return nn.Parameter(torch.empty(*shape, dtype=dtype), requires_grad=False)

        self.weight_packed = frozen(out_features, -(-in_features // cfg.per_word), dtype=torch.int32)
        self.weight_scale = frozen(out_features, groups, dtype=scale_dtype)
        if not cfg.symmetric:
            self.weight_zero_point = frozen(-(-out_features // cfg.per_word), groups, dtype=torch.int32)
        else:
            self.weight_zero_point = None
        self.weight_shape = frozen(2, dtype=torch.int64)

    def dequantized(self) -> torch.Tensor:
        return dequantize(
            self.weight_packed,
            self.weight_scale,
            self.weight_zero_point,
            (self.out_features, self.in_features),
            self.cfg,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the full weight exists only during this call: memory holds the packed codes plus one layer
        return F.linear(x, self.dequantized().to(x.dtype))

    def extra_repr(self) -> str:
        c = self.cfg
        groups = f"group_size={c.group_size}" if c.group_size else "per channel"
        return f"{self.in_features}, {self.out_features}, int{c.num_bits}, {groups}, symmetric={c.symmetric}"


def quantized_linears(model: nn.Module, cfg: PackQuantConfig) -> dict[str, nn.Linear]:
    """The Linears of ``model`` that the checkpoint stores packed: every one not in ``ignore``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and not cfg.is_ignored(n)}


def replace_with_packed(model: nn.Module, cfg: PackQuantConfig, scale_dtype: torch.dtype) -> None:
    """Swap each Linear that the checkpoint stores packed for a PackedLinear of the same size."""
    for name, lin in quantized_linears(model, cfg).items():
        parent_name, _, child = name.rpartition(".")
        if cfg.group_size is not None and lin.in_features % cfg.group_size:
            raise ModelFileError(
                f"quantization_config group_size {cfg.group_size} does not divide {name}'s {lin.in_features} inputs; "
                "the config does not belong to this model. Download the quantized folder again."
            )
        setattr(
            model.get_submodule(parent_name), child, PackedLinear(lin.in_features, lin.out_features, cfg, scale_dtype)
        )


def check_packed(model: nn.Module, folder) -> None:
    """After loading: every shape record matches its layer and every scale is a finite number."""
    for name, m in model.named_modules():
        if not isinstance(m, PackedLinear):
            continue
        if m.weight_shape.tolist() != [m.out_features, m.in_features]:
            raise ModelFileError(
                f"{name}.weight_shape in {folder} is {m.weight_shape.tolist()}, but the model's config gives "
                f"[{m.out_features}, {m.in_features}]. The weights and config.json do not belong together; download "
                "the quantized folder again."
            )
        if not torch.isfinite(m.weight_scale).all():
            raise ModelFileError(
                f"{name}.weight_scale in {folder} holds NaN or infinite values: the file is damaged. Download the "
                "quantized folder again."
            )


def dequantize_packed_(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Replace every PackedLinear by a plain Linear holding its weight in ``dtype`` (CPU / MPS path)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, PackedLinear):
            lin = nn.Linear(m.in_features, m.out_features, bias=False, device="meta")
            lin.weight = nn.Parameter(m.dequantized().to(dtype), requires_grad=False)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, lin)
    return model
