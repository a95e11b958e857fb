"""Reading CAM++ weights out of ``campplus.onnx`` (``testing.decoder`` writes such files for tests).

The released file is a TorchScript-exporter ONNX graph. Initializer names are not reliable: the
exporter folded each conv+BN pair into a new conv whose weight and bias are anonymous
(``onnx::Conv_4372``), and small constants may be inlined as Constant nodes or deduplicated
behind Identity nodes. Node names are reliable: they are the torch module scopes
(``/head/layer1/layer1.0/conv1/Conv``, ``/xvector/block1/tdnnd1/nonlinear1/batchnorm/BatchNormalization``).
So the reader walks the modules of the folded ``CAMPPlus``, finds each one's node by scope and
takes Conv inputs [1:3] and BatchNormalization inputs [1:5], resolving each input through
initializers, Constant and Identity nodes. The sizes come from the same nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..weights.checkpoint import check_model_file
from ..weights.onnx_graph import OnnxGraph, load_converted
from .campplus import BatchNorm, CAMPPlus, CAMPPlusDims

WHAT = "CAM++ speaker model (campplus.onnx)"
CONVERTER = "campplus-v1"  # the conversion cache's key: change it when the conversion's output changes


def _scope(module_name: str) -> str:
    """Node-name prefix of a module: the exporter names an nn.Sequential item '<parent>.<index>'."""
    parts = module_name.split(".")
    return "/" + "/".join(f"{parts[i - 1]}.{p}" if p.isdigit() else p for i, p in enumerate(parts))


FIX = (
    "It is not the CAM++ export of the Step-Audio-EditX release, or it is damaged; download "
    "CosyVoice-300M-25Hz/campplus.onnx again."
)


class _Graph(OnnxGraph):
    def __init__(self, path: Path):
        super().__init__(path, WHAT, FIX)

    def conv_weight(self, scope: str) -> torch.Tensor:
        return self.value(self.node(f"{scope}/Conv", "Conv").input[1])

    def dims(self) -> CAMPPlusDims:
        m_channels = self.conv_weight("/head/conv1").shape[0]
        tdnn = self.conv_weight("/xvector/tdnn/linear")
        local = self.conv_weight("/xvector/block1/tdnnd1/cam_layer/linear_local")
        layers = []
        for b in (1, 2, 3):
            n = 0
            while f"/xvector/block{b}/tdnnd{n + 1}/cam_layer/linear_local/Conv" in self.nodes:
                n += 1
            layers.append(n)
        feat_dim = tdnn.shape[1] // m_channels * 8
        if self.inputs and len(self.inputs[0].type.tensor_type.shape.dim) == 3:
            feat_dim = self.inputs[0].type.tensor_type.shape.dim[2].dim_value or feat_dim
        return CAMPPlusDims(
            feat_dim=feat_dim,
            embedding_size=self.conv_weight("/xvector/dense/linear").shape[0],
            growth_rate=local.shape[0],
            bn_size=local.shape[1] // local.shape[0],
            init_channels=tdnn.shape[0],
            m_channels=m_channels,
            block_layers=tuple(layers),
        )


def _read_conv(graph: _Graph, name: str, conv: nn.Conv1d | nn.Conv2d, out: dict[str, torch.Tensor]) -> None:
    node = graph.node(f"{_scope(name)}/Conv", "Conv")
    attrs, nd = graph.attributes(node), len(conv.stride)
    got = (
        tuple(attrs.get("strides", [1] * nd)), tuple(attrs.get("dilations", [1] * nd)),
        tuple(attrs.get("pads", [0] * 2 * nd)), attrs.get("group", 1),
    )
    want = (tuple(conv.stride), tuple(conv.dilation), tuple(conv.padding) * 2, conv.groups)
    if got != want:
        raise graph.error(f"node '{node.name}' has (strides, dilations, pads, group) {got}, expected {want}")
    has_bias = len(node.input) > 2 and node.input[2] != ""
    if has_bias != (conv.bias is not None):
        raise graph.error(f"node '{node.name}' {'has' if has_bias else 'lacks'} a bias, unlike CAM++'s {name}")
    out[f"{name}.weight"] = graph.value(node.input[1])
    if has_bias:
        out[f"{name}.bias"] = graph.value(node.input[2])


def _read_batchnorm(graph: _Graph, name: str, bn: BatchNorm, out: dict[str, torch.Tensor]) -> None:
    node = graph.node(f"{_scope(name)}/BatchNormalization", "BatchNormalization")
    eps = graph.attributes(node).get("epsilon", 1e-5)
    if abs(eps - bn.eps) > 1e-9:
        raise graph.error(f"node '{node.name}' has epsilon {eps}, expected {bn.eps}")
    scale, bias, mean, var = (graph.value(i) for i in node.input[1:5])
    if bn.weight is not None:
        out[f"{name}.weight"], out[f"{name}.bias"] = scale, bias
    elif not (torch.all(scale == 1) and torch.all(bias == 0)):
        raise graph.error(f"node '{node.name}' scales or shifts, but CAM++'s {name} is affine-free")
    out[f"{name}.running_mean"], out[f"{name}.running_var"] = mean, var


def _convert(path: Path) -> tuple[CAMPPlusDims, dict[str, torch.Tensor]]:
    graph = _Graph(path)
    dims = graph.dims()
    with torch.device("meta"):
        template = CAMPPlus(dims)
    state: dict[str, torch.Tensor] = {}
    for name, module in template.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            _read_conv(graph, name, module, state)
        elif isinstance(module, BatchNorm):
            _read_batchnorm(graph, name, module, state)
    for key, expected in template.state_dict().items():
        if key in state and state[key].shape != expected.shape:
            raise graph.error(f"'{key}' has shape {tuple(state[key].shape)}, expected {tuple(expected.shape)}")
    return dims, state


def campplus_state_dict_from_onnx(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The folded CAM++ state dict (keys of ``CAMPPlus``) held by an exported ``campplus.onnx``, read afresh."""
    return _convert(check_model_file(path, WHAT))[1]


def load_campplus(path: str | os.PathLike) -> CAMPPlus:
    """Build CAM++ at the sizes found in ``path`` and load its weights strictly (eval mode, CPU)."""
    return load_converted(path, WHAT, CONVERTER, CAMPPlusDims, _convert, CAMPPlus)
