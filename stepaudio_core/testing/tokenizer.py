"""A tiny, randomly initialised ``Step-Audio-Tokenizer/`` folder in the released layout.

``write_tiny_tokenizer`` writes the files the loaders read, in their real formats: the FunASR
folder (``config.yaml``, ``am.mvn``, ``model.pt`` with encoder, decoder and predictor tensors),
``linguistic_tokenizer.npy`` and ``speech_tokenizer_v1.onnx``, a runnable ONNX graph of an S3
tokenizer v1 (25 Hz) named as the release's torch export is: node names are the module scopes,
linear weights and the codebook are anonymous ``onnx::MatMul_*`` initializers, the convolutions,
layer norms and positions keep ``encoders.*`` names. (The ``s3tokenizer`` package's converter reads
it too, which the tests use as an independent cross-check.)
Random weights make meaningless codes; tests check lengths, ranges, determinism and plumbing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..tokenizer.paraformer import ParaformerConfig, ParaformerEncoder
from ..tokenizer.s3 import S3Dims, S3Tokenizer
from ..tokenizer.vq02 import CODEBOOK_FILE, PARAFORMER_DIR
from ..tokenizer.vq06 import HEAD_DIM, VQ06_FILE
from .random_weights import random_state

TINY_PARAFORMER_YAML = """\
# Tiny Paraformer-streaming configuration for tests: the released file's layout, small widths.
model: ParaformerStreaming
model_conf:
    ctc_weight: 0.0
    predictor_weight: 1.0
    predictor_bias: 1
encoder: SANMEncoderChunkOpt
encoder_conf:
    output_size: {dim}
    attention_heads: 4
    linear_units: {units}
    num_blocks: {blocks}
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.1
    input_layer: pe_online
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm
    chunk_size: [12, 15]
    stride: [8, 10]
    pad_left: [0, 0]
    encoder_att_look_back_factor: [4, 4]
    decoder_att_look_back_factor: [1, 1]
decoder: ParaformerSANMDecoder
decoder_conf:
    attention_heads: 4
    linear_units: {units}
    num_blocks: 1
    kernel_size: 11
    sanm_shfit: 5
predictor: CifPredictorV2
predictor_conf:
    idim: {dim}
    threshold: 1.0
    l_order: 1
    r_order: 1
    tail_threshold: 0.45
frontend: WavFrontendOnline
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
tokenizer: CharTokenizer
tokenizer_conf:
    unk_symbol: <unk>
    split_with_space: true
"""


def _write_am_mvn(path: Path, shift: torch.Tensor, scale: torch.Tensor) -> None:
    def vector(v):
        return " ".join(f"{x:.6f}" for x in v.tolist())

    n = shift.numel()
    path.write_text(
        f"<Nnet>\n<Splice> {n} {n}\n[ 0 ]\n<AddShift> {n} {n}\n<LearnRateCoef> 0 [ {vector(shift)} ]\n"
        f"<Rescale> {n} {n}\n<LearnRateCoef> 0 [ {vector(scale)} ]\n</Nnet>\n",
        encoding="utf-8",
    )


def write_tiny_paraformer(folder: Path, g: torch.Generator, dim: int = 32, units: int = 64, blocks: int = 2) -> None:
    """The FunASR model folder (config.yaml, am.mvn, model.pt) and the vq02 codebook."""
    model_dir = folder / PARAFORMER_DIR
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.yaml").write_text(
        TINY_PARAFORMER_YAML.format(dim=dim, units=units, blocks=blocks), encoding="utf-8"
    )
    # Plausible fbank statistics: means around -12, standard deviations around 3.
    _write_am_mvn(
        model_dir / "am.mvn", -12 + 2 * torch.randn(560, generator=g), 0.33 + 0.05 * torch.rand(560, generator=g)
    )
    encoder = ParaformerEncoder(ParaformerConfig(output_size=dim, linear_units=units, num_blocks=blocks))
    state = {f"encoder.{k}": v for k, v in random_state(encoder.state_dict(), g).items()}
    # The released file also holds the ASR decoder and predictor, which the tokenizer skips.
    state["decoder.embed.0.weight"] = torch.randn(16, dim, generator=g)
    state["predictor.cif_output.weight"] = random_state({"w": torch.empty(1, dim)}, g)["w"]
    state["predictor.cif_output.bias"] = torch.zeros(1)
    torch.save(state, model_dir / "model.pt")
    np.save(folder / CODEBOOK_FILE, torch.randn(1024, dim, generator=g).numpy())


class _OnnxGraph:
    """Collects nodes. Weights become initializers; every other constant a Constant node, as
    torch's exporter writes them."""

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []

    def weight(self, name: str, value: torch.Tensor) -> str:
        self.initializers.append(numpy_helper.from_array(value.detach().float().numpy(), name))
        return name

    def matmul_weight(self, value: torch.Tensor) -> str:
        """A transposed copy, which the exporter stores under a fresh anonymous name."""
        return self.weight(f"onnx::MatMul_{1000 + len(self.initializers)}", value)

    def op(self, op: str, inputs: list, name: str, **attrs) -> str:
        """Add node ``name``; numpy values among ``inputs`` become Constant nodes in front of it."""
        names = []
        for j, value in enumerate(inputs):
            if isinstance(value, np.ndarray | np.generic):
                const = f"{name}/Constant_{j}"
                self.nodes.append(
                    helper.make_node(
                        "Constant", [], [const], name=const, value=numpy_helper.from_array(np.asarray(value))
                    )
                )
                value = const
            names.append(value)
        self.nodes.append(helper.make_node(op, names, [f"{name}_output_0"], name=name, **attrs))
        return f"{name}_output_0"

    def gelu(self, x: str, prefix: str) -> str:
        """The exporter's erf form: x * (1 + erf(x / sqrt 2)) * 0.5."""
        y = self.op("Erf", [self.op("Div", [x, np.float32(math.sqrt(2.0))], f"{prefix}/Div")], f"{prefix}/Erf")
        y = self.op("Mul", [x, self.op("Add", [y, np.float32(1.0)], f"{prefix}/Add")], f"{prefix}/Mul")
        return self.op("Mul", [y, np.float32(0.5)], f"{prefix}/Mul_1")

    def linear(self, x: str, state: dict, key: str, prefix: str) -> str:
        """Nodes ``<prefix>/MatMul`` (weight stored transposed, as ONNX does) and ``<prefix>/Add`` (bias)."""
        y = self.op("MatMul", [x, self.matmul_weight(state[f"{key}.weight"].t().contiguous())], f"{prefix}/MatMul")
        if f"{key}.bias" in state:
            y = self.op("Add", [y, self.weight(f"{key}.bias", state[f"{key}.bias"])], f"{prefix}/Add")
        return y

    def layer_norm(self, x: str, state: dict, key: str, prefix: str) -> str:
        scale, bias = (self.weight(f"encoders.{key[8:]}.{n}", state[f"{key}.{n}"]) for n in ("weight", "bias"))
        return self.op("LayerNormalization", [x, scale, bias], f"{prefix}/LayerNormalization", axis=-1, epsilon=1e-5)


def _int64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def write_s3_onnx(state: dict[str, torch.Tensor], path: Path) -> None:
    """An S3 tokenizer v1 25 Hz graph for a batch of full-length mels, computing what ``S3Tokenizer`` computes."""
    gr = _OnnxGraph()
    n_mels, n_state = state["encoder.conv1.weight"].shape[1], state["encoder.conv1.weight"].shape[0]
    n_layer = len({k.split(".")[2] for k in state if k.startswith("encoder.blocks.")})
    n_head, head = n_state // HEAD_DIM, HEAD_DIM
    x = "feats"
    for i in (1, 2):
        w = gr.weight(f"encoders.conv{i}.weight", state[f"encoder.conv{i}.weight"])
        b = gr.weight(f"encoders.conv{i}.bias", state[f"encoder.conv{i}.bias"])
        x = gr.gelu(gr.op("Conv", [x, w, b], f"/conv{i}/Conv", kernel_shape=[3], pads=[1, 1], strides=[2]), f"/conv{i}")
    x = gr.op("Transpose", [x], "/Transpose", perm=[0, 2, 1])
    frames = gr.op(
        "Unsqueeze", [gr.op("Gather", [gr.op("Shape", [x], "/Shape"), np.int64(1)], "/Gather"), _int64(0)], "/Unsqueeze"
    )
    pos = gr.weight("encoders.positional_embedding", state["encoder.positional_embedding"])
    x = gr.op("Add", [x, gr.op("Slice", [pos, _int64(0), frames, _int64(0)], "/Slice")], "/Add")
    for i in range(n_layer):
        p, k = f"/blocks.{i}", f"encoder.blocks.{i}"
        h = gr.layer_norm(x, state, f"{k}.attn_ln", f"{p}/attn_ln")
        heads = {}
        for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = gr.op(
                "Reshape",
                [gr.linear(h, state, f"{k}.attn.{name}", f"{p}/attn/{name}"), _int64(0, 0, n_head, head)],
                f"{p}/attn/{name}/Reshape",
            )
            y = gr.op("Transpose", [y], f"{p}/attn/{name}/Transpose", perm=perm)
            # q and k are each scaled by head_dim ** -0.25, as in Whisper.
            heads[name] = y if name == "value" else gr.op("Mul", [y, np.float32(head**-0.25)], f"{p}/attn/{name}/Mul")
        w = gr.op(
            "Softmax",
            [gr.op("MatMul", [heads["query"], heads["key"]], f"{p}/attn/MatMul")],
            f"{p}/attn/Softmax",
            axis=-1,
        )
        y = gr.op(
            "Transpose",
            [gr.op("MatMul", [w, heads["value"]], f"{p}/attn/MatMul_1")],
            f"{p}/attn/Transpose",
            perm=[0, 2, 1, 3],
        )
        y = gr.op("Reshape", [y, _int64(0, 0, -1)], f"{p}/attn/Reshape")
        x = gr.op("Add", [x, gr.linear(y, state, f"{k}.attn.out", f"{p}/attn/out")], f"{p}/Add")
        h = gr.layer_norm(x, state, f"{k}.mlp_ln", f"{p}/mlp_ln")
        h = gr.gelu(gr.linear(h, state, f"{k}.mlp.0", f"{p}/mlp/mlp.0"), f"{p}/mlp/mlp.1")
        x = gr.op("Add", [x, gr.linear(h, state, f"{k}.mlp.2", f"{p}/mlp/mlp.2")], f"{p}/Add_1")
    # Quantizer: L2-normalise each frame, then the nearest codebook column (argmax of minus the squared distance).
    q = "/quantizer/rq/model/layers.0/_codebook"
    x = gr.op(
        "Div",
        [x, gr.op("Max", [gr.op("ReduceL2", [x], "/ReduceL2", axes=[-1], keepdims=1), np.float32(1e-12)], "/Max")],
        "/Div",
    )
    embed = gr.matmul_weight(state["quantizer._codebook.embed"].t().contiguous())  # (dim, codes)
    e2 = gr.op(
        "ReduceSum", [gr.op("Pow", [embed, np.float32(2.0)], f"{q}/Pow_1"), _int64(0)], f"{q}/ReduceSum_1", keepdims=1
    )
    x2 = gr.op("ReduceSum", [gr.op("Pow", [x, np.float32(2.0)], f"{q}/Pow"), _int64(-1)], f"{q}/ReduceSum", keepdims=1)
    xe = gr.op("Mul", [gr.op("MatMul", [x, embed], f"{q}/MatMul"), np.float32(2.0)], f"{q}/Mul")
    dist = gr.op("Neg", [gr.op("Add", [gr.op("Sub", [x2, xe], f"{q}/Sub"), e2], f"{q}/Add")], f"{q}/Neg")
    tokens = gr.op("ArgMax", [dist], f"{q}/ArgMax", axis=-1, keepdims=0)
    inputs = [
        helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["batch", n_mels, "frames"]),
        # The released interface; the reference always passes one mel at its full length.
        helper.make_tensor_value_info("feats_length", TensorProto.INT32, ["batch"]),
    ]
    outputs = [helper.make_tensor_value_info(tokens, TensorProto.INT64, ["batch", "tokens"])]
    graph = helper.make_graph(gr.nodes, "speech_tokenizer_v1_25hz", inputs, outputs, gr.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="stepaudio_core")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tiny_s3_state(
    g: torch.Generator, n_state: int = 128, n_layer: int = 2, n_codes: int = 4096
) -> dict[str, torch.Tensor]:
    """Random weights for ``S3Tokenizer`` at small width; positions stay the sinusoids.

    Codebook rows get lengths in [0.5, 1.5): with rows of equal length the nearest row would not
    depend on the frames' L2 normalisation, and tests could not see it.
    """
    dims = S3Dims(n_state=n_state, n_head=n_state // HEAD_DIM, n_layer=n_layer, n_codes=n_codes)
    state = S3Tokenizer(dims).state_dict()
    positions = state["encoder.positional_embedding"]
    state = random_state(state, g)
    state["encoder.positional_embedding"] = positions
    embed = torch.nn.functional.normalize(state["quantizer._codebook.embed"], dim=1)
    state["quantizer._codebook.embed"] = embed * (0.5 + torch.rand(n_codes, 1, generator=g))
    return state


def write_tiny_tokenizer(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny Step-Audio-Tokenizer folder at ``out_dir`` (created if needed) and return its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    write_tiny_paraformer(folder, g)
    write_s3_onnx(tiny_s3_state(g), folder / VQ06_FILE)
    return folder
