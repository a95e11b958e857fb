"""vq06, the "semantic" codes: CosyVoice's S3 tokenizer v1 at 25 Hz (``s3.py``), read from the released ONNX.

The released ``speech_tokenizer_v1.onnx`` is a torch export of the network in ``s3.py``; only its
weights are used, read with the ``onnx`` package (nothing runs through onnxruntime). Node names are
the torch module scopes (``/blocks.3/attn/query/MatMul``, ``/conv1/Conv``), so each weight is found
through the node that consumes it: linear weights are stored as anonymous (in, out) MatMul
initializers, the layer norms and convolutions keep their tensors as node inputs, and the codebook
is the matrix of the ``/quantizer/rq/model/layers.0/_codebook/MatMul`` node. The sizes come from
the same tensors (the head count from the width: 64 per head, as in Whisper). The convolutions'
attributes are checked, so the 50 Hz v1 file (conv1 stride 1, twice the tokens) is refused
instead of loading silently.

As the reference, the 16 kHz waveform is cut into consecutive 30 s pieces (a last piece under
30 ms is dropped), and each piece gets its own 128-bin Whisper log-mel, so the piece's own
loudest bin sets the -8 floor.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper
from torch import nn

from ..checkpoint import check_model_file, load_strict
from ..convert_cache import cached_conversion
from ..errors import InputError, ModelFileError
from ..features import whisper_log_mel
from .s3 import S3Dims, S3Tokenizer

VQ06_FILE = "speech_tokenizer_v1.onnx"
WHAT = "vq06 tokenizer (speech_tokenizer_v1.onnx)"
PIECE_SAMPLES = 30 * 16000
MIN_PIECE_SAMPLES = 480
HEAD_DIM = 64  # Whisper-family attention: 1280 wide / 20 heads in the release
CODEBOOK_NODE = "/quantizer/rq/model/layers.0/_codebook/MatMul"
CONVERTER = "s3v1-v1"  # the conversion cache's key: change it when read_s3_onnx's output changes
# Block linear layers: module path in ResidualAttentionBlock -> node scope in the exported graph.
LINEAR_SCOPES = {
    "attn.query": "attn/query",
    "attn.key": "attn/key",
    "attn.value": "attn/value",
    "attn.out": "attn/out",
    "mlp.0": "mlp/mlp.0",
    "mlp.2": "mlp/mlp.2",
}


class _S3Graph:
    """The nodes and stored tensors of an S3 tokenizer export."""

    def __init__(self, path: Path):
        self.path = path
        try:
            model = onnx.load(str(path))
        except (DecodeError, OSError, ValueError, RuntimeError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFileError(
                f"{WHAT} at {path} is truncated or corrupt ({reason}). Delete it and download it again."
            ) from None
        self.nodes = {n.name: n for n in model.graph.node}
        self.producers = {out: n for n in model.graph.node for out in n.output}
        self.initializers = {t.name: t for t in model.graph.initializer}

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(
            f"{WHAT} at {self.path}: {problem}. It is not the S3 tokenizer v1 (25 Hz) of Step-Audio-Tokenizer, "
            "or it is damaged; download Step-Audio-Tokenizer/speech_tokenizer_v1.onnx again."
        )

    def node(self, name: str, op: str) -> onnx.NodeProto:
        node = self.nodes.get(name)
        if node is None or node.op_type != op:
            raise self.error(f"the graph has no {op} node named '{name}'")
        return node

    def _stored(self, name: str) -> onnx.TensorProto | None:
        """The tensor behind a node input if it is a constant (initializer, Constant, Identity of one)."""
        if name in self.initializers:
            return self.initializers[name]
        producer = self.producers.get(name)
        if producer is not None and producer.op_type == "Identity":
            return self._stored(producer.input[0])
        if (
            producer is not None
            and producer.op_type == "Constant"
            and [a.name for a in producer.attribute] == ["value"]
        ):
            return producer.attribute[0].t
        return None

    def value(self, name: str) -> torch.Tensor:
        tensor = self._stored(name)
        if tensor is None:
            raise self.error(f"the graph has no stored tensor '{name}'")
        try:
            array = numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as e:
            raise self.error(f"tensor '{name}' cannot be read ({e})") from None
        if not np.issubdtype(array.dtype, np.floating):
            raise self.error(f"tensor '{name}' holds {array.dtype}, not floating-point weights")
        return torch.from_numpy(np.array(array, dtype=np.float32))

    def weight_of(self, node_name: str, op: str) -> torch.Tensor:
        """The single stored input of a node (the weight of a MatMul, the bias of an Add)."""
        stored = [i for i in self.node(node_name, op).input if self._stored(i) is not None]
        if len(stored) != 1:
            raise self.error(f"node '{node_name}' has {len(stored)} stored inputs, expected 1")
        return self.value(stored[0])

    def codebook(self) -> torch.Tensor:
        """(n_codes, n_state): the matrix of the codebook's x @ E node, stored (n_state, n_codes)."""
        return self.weight_of(CODEBOOK_NODE, "MatMul").t()


def _conv(graph: _S3Graph, name: str, conv: nn.Conv1d, out: dict[str, torch.Tensor]) -> None:
    node = graph.node(f"/{name}/Conv", "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    got = (list(attrs.get("strides", [1])), list(attrs.get("pads", [0, 0])), list(attrs.get("dilations", [1])))
    want = (list(conv.stride), list(conv.padding) * 2, list(conv.dilation))
    if got != want or attrs.get("group", 1) != 1:
        hint = " (conv1 stride 1 is the 50 Hz tokenizer, which gives twice the codes)" if name == "conv1" else ""
        raise graph.error(f"node '{node.name}' has (strides, pads, dilations) {got}, expected {want}{hint}")
    if len(node.input) != 3:
        raise graph.error(f"node '{node.name}' has {len(node.input)} inputs, expected input, weight and bias")
    out[f"encoder.{name}.weight"] = graph.value(node.input[1])
    out[f"encoder.{name}.bias"] = graph.value(node.input[2])


def _layer_norm(graph: _S3Graph, i: int, name: str, ln: nn.LayerNorm, out: dict[str, torch.Tensor]) -> None:
    node = graph.node(f"/blocks.{i}/{name}/LayerNormalization", "LayerNormalization")
    eps = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
    if abs(eps - ln.eps) > 1e-9:
        raise graph.error(f"node '{node.name}' has epsilon {eps}, expected {ln.eps}")
    if len(node.input) != 3:
        raise graph.error(f"node '{node.name}' has {len(node.input)} inputs, expected input, scale and bias")
    out[f"encoder.blocks.{i}.{name}.weight"] = graph.value(node.input[1])
    out[f"encoder.blocks.{i}.{name}.bias"] = graph.value(node.input[2])


def read_s3_onnx(path: str | os.PathLike) -> tuple[S3Dims, dict[str, torch.Tensor]]:
    """The sizes and the ``S3Tokenizer`` state dict held by an S3 tokenizer v1 (25 Hz) ONNX export."""
    path = check_model_file(path, WHAT)
    graph = _S3Graph(path)
    conv1 = graph.value(graph.node("/conv1/Conv", "Conv").input[1])
    positions = graph.value("encoders.positional_embedding")
    codebook = graph.codebook()
    n_layer = 0
    while f"/blocks.{n_layer}/attn_ln/LayerNormalization" in graph.nodes:
        n_layer += 1
    n_state, n_mels = conv1.shape[:2]
    if n_layer == 0 or n_state % HEAD_DIM:
        raise graph.error(f"{n_layer} attention blocks of width {n_state} (expected a multiple of {HEAD_DIM})")
    dims = S3Dims(
        n_mels=n_mels,
        n_ctx=positions.shape[0],
        n_state=n_state,
        n_head=n_state // HEAD_DIM,
        n_layer=n_layer,
        n_codes=codebook.shape[0],
    )
    with torch.device("meta"):
        template = S3Tokenizer(dims)
    state = {"encoder.positional_embedding": positions, "quantizer._codebook.embed": codebook}
    _conv(graph, "conv1", template.encoder.conv1, state)
    _conv(graph, "conv2", template.encoder.conv2, state)
    for i, block in enumerate(template.encoder.blocks):
        _layer_norm(graph, i, "attn_ln", block.attn_ln, state)
        _layer_norm(graph, i, "mlp_ln", block.mlp_ln, state)
        for name, scope in LINEAR_SCOPES.items():
            # ONNX stores x @ W with W (in, out); torch keeps (out, in).
            state[f"encoder.blocks.{i}.{name}.weight"] = graph.weight_of(f"/blocks.{i}/{scope}/MatMul", "MatMul").t()
            if block.get_submodule(name).bias is not None:
                state[f"encoder.blocks.{i}.{name}.bias"] = graph.weight_of(f"/blocks.{i}/{scope}/Add", "Add")
    return dims, {k: v.contiguous() for k, v in state.items()}


class VQ06Tokenizer(nn.Module):
    """16 kHz waveform -> vq06 codes (25 per second)."""

    def __init__(self, model: S3Tokenizer):
        super().__init__()
        self.model = model

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> VQ06Tokenizer:
        """Build and load from the ONNX export; the conversion is cached beside it (``convert_cache``)."""
        path = check_model_file(path, WHAT)

        def convert():
            dims, state = read_s3_onnx(path)
            return state, {"dims": json.dumps(asdict(dims))}

        state, meta = cached_conversion(path, CONVERTER, convert)
        dims = S3Dims(**json.loads(meta["dims"]))
        model = S3Tokenizer(dims)
        load_strict(model, state, path, WHAT)
        return cls(model).eval()

    @torch.inference_mode()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(N,) float 16 kHz -> (T,) int64 codes on the CPU; a 30 s piece of M samples gives ceil(M // 160 / 4)."""
        if wav.dim() != 1:
            raise InputError(f"vq06 takes a mono 16 kHz waveform of shape (samples,), got {tuple(wav.shape)}")
        wav = wav.to(self.model.encoder.conv1.weight.device, torch.float32)
        codes = [torch.zeros(0, dtype=torch.long)]
        for piece in wav.split(PIECE_SAMPLES):
            if piece.shape[0] < MIN_PIECE_SAMPLES:
                continue
            mel = whisper_log_mel(piece, n_mels=self.model.dims.n_mels)
            codes.append(self.model(mel[None])[0].cpu())
        return torch.cat(codes)
