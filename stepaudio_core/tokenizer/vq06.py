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

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..features import whisper_log_mel
from ..weights.checkpoint import check_model_file
from ..weights.onnx_graph import OnnxGraph, load_converted
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


FIX = (
    "It is not the S3 tokenizer v1 (25 Hz) of Step-Audio-Tokenizer, or it is damaged; download "
    "Step-Audio-Tokenizer/speech_tokenizer_v1.onnx again."
)


class _S3Graph(OnnxGraph):
    """The nodes and stored tensors of an S3 tokenizer export."""

    def __init__(self, path: Path):
        super().__init__(path, WHAT, FIX)

    def codebook(self) -> torch.Tensor:
        """(n_codes, n_state): the matrix of the codebook's x @ E node, stored (n_state, n_codes)."""
        return self.weight_of(CODEBOOK_NODE, "MatMul").t()


def _conv(graph: _S3Graph, name: str, conv: nn.Conv1d, out: dict[str, torch.Tensor]) -> None:
    node = graph.node(f"/{name}/Conv", "Conv")
    attrs = graph.attributes(node)
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
    eps = graph.attributes(node).get("epsilon", 1e-5)
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
        return cls(load_converted(path, WHAT, CONVERTER, S3Dims, read_s3_onnx, S3Tokenizer)).eval()

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
