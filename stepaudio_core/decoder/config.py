"""Typed configuration of the decoder, read from the released ``cosyvoice.yaml``.

The file is written for HyperPyYAML: ``!new:<python.path>`` builds a class from a mapping of
keyword arguments, ``!ref <key>`` points at another key, and ``!apply:`` calls a function at
load time (the release uses it to seed RNGs). We never import or call anything named in the
file: PyYAML's safe loader reads it, ``!new:`` nodes become ``(class name, kwargs)`` pairs,
references are resolved, ``!apply:`` nodes are dropped, and the values fill the dataclasses
below. Defaults are the released model's values (docs: decoder.md section 1.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelFileError
from ..features import MelConfig


@dataclass(frozen=True)
class New:
    """A ``!new:`` node: the class path it names and its keyword arguments."""

    cls: str
    kwargs: dict


@dataclass(frozen=True)
class _Ref:
    expr: str


class _Dropped:
    """Stands for an ``!apply:`` / ``!name:`` node, which we never execute."""


class _Loader(yaml.SafeLoader):
    pass


def _new(loader, suffix, node):
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, f"!new:{suffix} must hold a mapping of arguments", node.start_mark)
    return New(suffix, loader.construct_mapping(node, deep=True))


def _ref(loader, node):
    return _Ref(loader.construct_scalar(node))


def _dropped(loader, suffix, node):
    return _Dropped()


_Loader.add_multi_constructor("!new:", _new)
_Loader.add_multi_constructor("!apply:", _dropped)
_Loader.add_multi_constructor("!name:", _dropped)
_Loader.add_constructor("!ref", _ref)

_REF = re.compile(r"^<([A-Za-z_][\w.]*)>$")


def _resolve(value: Any, root: dict, path: Path, depth: int = 0) -> Any:
    if depth > 32:
        raise ModelFileError(f"{path}: '!ref' references form a cycle")
    if isinstance(value, _Ref):
        m = _REF.match(value.expr.strip())
        if not m:
            raise ModelFileError(f"{path}: unsupported '!ref {value.expr}' (only '!ref <key>' is understood)")
        target: Any = root
        for part in m.group(1).split("."):
            if not isinstance(target, (dict, New)) or part not in (target.kwargs if isinstance(target, New) else target):
                raise ModelFileError(f"{path}: '!ref {value.expr}' points at a key that does not exist")
            target = target.kwargs[part] if isinstance(target, New) else target[part]
        return _resolve(target, root, path, depth + 1)
    if isinstance(value, New):
        return New(value.cls, {k: _resolve(v, root, path, depth) for k, v in value.kwargs.items()})
    if isinstance(value, dict):
        return {k: _resolve(v, root, path, depth) for k, v in value.items() if not isinstance(v, _Dropped)}
    if isinstance(value, list):
        return [_resolve(v, root, path, depth) for v in value]
    return value


def read_hyperpyyaml(path: str | Path, text: str | None = None) -> dict:
    """Read a HyperPyYAML file (or ``text`` named ``path``) into plain values and ``New`` nodes, executing nothing."""
    path = Path(path)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
        root = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror}. Check the model folder.") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path} is not a text file. Download it again.") from None
    except yaml.YAMLError as e:
        raise ModelFileError(f"{path} is not valid YAML ({str(e).splitlines()[0]}). Download it again.") from None
    if not isinstance(root, dict):
        raise ModelFileError(f"{path} does not hold a mapping of settings. Download it again.")
    return _resolve(root, root, path)


def _take(cls, values: dict, path: Path, where: str):
    """Fill dataclass ``cls`` from ``values``; unknown keys (dropouts, training options) are ignored."""
    names = {f.name for f in fields(cls)}
    kwargs = {}
    for k, v in values.items():
        if k in names:
            kwargs[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ModelFileError(f"{path}: section '{where}' is incomplete ({e}). Download the file again.") from None


def _expect(node: Any, cls_suffix: str, path: Path, where: str) -> dict:
    if not isinstance(node, New):
        raise ModelFileError(f"{path}: '{where}' must be a '!new:...{cls_suffix}' node. Download the file again.")
    if node.cls.rsplit(".", 1)[-1] != cls_suffix:
        raise ModelFileError(
            f"{path}: '{where}' builds {node.cls}, but this pack implements {cls_suffix} only "
            "(the Step-Audio-EditX release). Use the CosyVoice-300M-25Hz folder of Step-Audio-EditX."
        )
    return node.kwargs


@dataclass(frozen=True)
class EncoderConfig:
    """UpsampleConformerEncoderV2 (non-streaming use: full attention, no chunk masks)."""

    input_size: int = 512
    output_size: int = 512
    pre_lookahead_len: int = 3
    num_blocks: int = 6
    num_up_blocks: int = 4
    up_stride: int = 2
    up_scale_factor: float = 2.0
    attention_heads: int = 8
    linear_units: int = 2048
    key_bias: bool = True
    normalize_before: bool = True
    activation_type: str = "swish"
    input_layer: str = "linear"
    pos_enc_layer_type: str = "rel_pos_espnet"
    selfattention_layer_type: str = "rel_selfattn"


@dataclass(frozen=True)
class DiTConfig:
    """The CFM estimator."""

    in_channels: int = 320
    out_channels: int = 80
    mlp_ratio: float = 4.0
    depth: int = 16
    num_heads: int = 8
    head_dim: int = 64
    hidden_size: int = 512


@dataclass(frozen=True)
class FlowConfig:
    """CausalMaskedDiffWithXvec: token embedding, encoder, speaker projection, CFM."""

    input_size: int = 512
    output_size: int = 80
    spk_embed_dim: int = 192
    vocab_size: int = 5121
    output_type: str = "mel"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    estimator: DiTConfig = field(default_factory=DiTConfig)
    inference_cfg_rate: float = 0.7


@dataclass(frozen=True)
class HiFTConfig:
    """HiFTGenerator with its ConvRNNF0Predictor (``f0_*`` fields)."""

    in_channels: int = 80
    base_channels: int = 512
    nb_harmonics: int = 8
    sampling_rate: int = 24000
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    nsf_voiced_threshold: float = 10.0
    upsample_rates: tuple = (8, 5, 3)
    upsample_kernel_sizes: tuple = (16, 11, 7)
    istft_n_fft: int = 16
    istft_hop_len: int = 4
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple = (7, 7, 11)
    source_resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99
    f0_num_class: int = 1
    f0_in_channels: int = 80
    f0_cond_channels: int = 512


@dataclass(frozen=True)
class DecoderConfig:
    flow: FlowConfig = field(default_factory=FlowConfig)
    hift: HiFTConfig = field(default_factory=HiFTConfig)
    mel: MelConfig = field(default_factory=MelConfig)

    @classmethod
    def from_yaml_text(cls, text: str) -> DecoderConfig:
        return cls.from_yaml("<text>", text)

    @classmethod
    def from_yaml(cls, path: str | Path, text: str | None = None) -> DecoderConfig:
        path = Path(path)
        root = read_hyperpyyaml(path, text)
        for key in ("flow", "hift", "mel_conf"):
            if key not in root:
                raise ModelFileError(f"{path} has no '{key}' section. Download cosyvoice.yaml again.")

        flow = _expect(root["flow"], "CausalMaskedDiffWithXvec", path, "flow")
        enc = _take(EncoderConfig, _expect(flow.get("encoder"), "UpsampleConformerEncoderV2", path, "flow.encoder"), path, "flow.encoder")
        cfm = _expect(flow.get("decoder"), "CausalConditionalCFM", path, "flow.decoder")
        dit = _take(DiTConfig, _expect(cfm.get("estimator"), "DiT", path, "flow.decoder.estimator"), path, "flow.decoder.estimator")
        emb = _expect(flow.get("input_embedding"), "DualCodebookEmbedding", path, "flow.input_embedding")
        flow_cfg = _take(FlowConfig, flow, path, "flow")
        if emb.get("vocab_size", flow_cfg.vocab_size) != flow_cfg.vocab_size or emb.get("input_size", flow_cfg.input_size) != flow_cfg.input_size:
            raise ModelFileError(f"{path}: flow.input_embedding disagrees with flow's vocab_size/input_size.")
        if enc.input_size != enc.output_size or enc.input_size != flow_cfg.input_size:
            raise ModelFileError(f"{path}: flow.encoder input_size/output_size must both equal flow.input_size.")
        flow_cfg = FlowConfig(
            **{f.name: getattr(flow_cfg, f.name) for f in fields(FlowConfig) if f.name not in ("encoder", "estimator", "inference_cfg_rate")},
            encoder=enc,
            estimator=dit,
            inference_cfg_rate=float(cfm.get("inference_cfg_rate", 0.7)),
        )

        hift = dict(_expect(root["hift"], "HiFTGenerator", path, "hift"))
        f0 = _expect(hift.pop("f0_predictor", None), "ConvRNNF0Predictor", path, "hift.f0_predictor")
        istft = hift.pop("istft_params", {"n_fft": 16, "hop_len": 4})
        hift.update(istft_n_fft=istft["n_fft"], istft_hop_len=istft["hop_len"])
        hift.update({f"f0_{k}": v for k, v in f0.items()})
        hift_cfg = _take(HiFTConfig, hift, path, "hift")

        mel_cfg = _take(MelConfig, root["mel_conf"], path, "mel_conf")
        return cls(flow=flow_cfg, hift=hift_cfg, mel=mel_cfg)
