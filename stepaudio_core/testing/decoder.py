"""A tiny, randomly initialised ``CosyVoice-300M-25Hz/`` decoder folder in the released layout.

``cosyvoice.yaml`` with the release's layout and class paths at small widths, ``flow.pt`` and
``hift.pt`` as torch state dicts, and ``campplus.onnx`` exported the way the release's file was.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..decoder.campplus import CAMPPlus, CAMPPlusDims
from ..decoder.config import DecoderConfig
from ..decoder.flow import CausalMaskedDiffWithXvec
from ..decoder.hift import HiFTGenerator
from .random_weights import randomize_

TINY_COSYVOICE_YAML = """\
# Tiny CosyVoice-300M-25Hz configuration for tests: the released file's layout and class paths,
# with small widths and depths.
__set_seed1: !apply:random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]

sample_rate: 24000
spk_embed_dim: 192
token_vocab_size: 5121
flow_hidden: 32

flow: !new:stepvocoder.cosyvoice2.flow.flow.CausalMaskedDiffWithXvec
    input_size: !ref <flow_hidden>
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: !ref <token_vocab_size>
    input_embedding: !new:stepvocoder.cosyvoice2.embedding.dual_codebook.DualCodebookEmbedding
        vocab_size: !ref <token_vocab_size>
        input_size: !ref <flow_hidden>
    encoder: !new:stepvocoder.cosyvoice2.transformer.upsample_encoder_v2.UpsampleConformerEncoderV2
        input_size: !ref <flow_hidden>
        output_size: !ref <flow_hidden>
        input_layer: 'linear'
        pre_lookahead_len: 3
        num_blocks: 2
        num_up_blocks: 2
        up_stride: 2
        up_scale_factor: 2
        attention_heads: 4
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        key_bias: true
        linear_units: 64
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: true
        activation_type: 'swish'
    decoder: !new:stepvocoder.cosyvoice2.flow.flow_matching.CausalConditionalCFM
        inference_cfg_rate: 0.7
        estimator: !new:stepvocoder.cosyvoice2.flow.decoder_dit.DiT
            in_channels: 320
            out_channels: 80
            mlp_ratio: 4.0
            depth: 2
            num_heads: 4
            head_dim: 8
            hidden_size: !ref <flow_hidden>

hift: !new:stepvocoder.cosyvoice2.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: 32
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:stepvocoder.cosyvoice2.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 32

mel_conf:
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: 8000
    center: False
"""


def write_tiny_decoder(folder: Path, seed: int = 0) -> Path:
    """Write ``CosyVoice-300M-25Hz/`` (cosyvoice.yaml, flow.pt, hift.pt, campplus.onnx) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cosyvoice.yaml").write_text(TINY_COSYVOICE_YAML, encoding="utf-8")
    cfg = DecoderConfig.from_yaml(folder / "cosyvoice.yaml")
    gen = torch.Generator().manual_seed(seed)
    torch.save(randomize_(CausalMaskedDiffWithXvec(cfg.flow), gen).state_dict(), folder / "flow.pt")
    torch.save(randomize_(HiFTGenerator(cfg.hift), gen).state_dict(), folder / "hift.pt")
    # A narrow CAM++ (same topology and 192-d output): the released width would add 28 MB per bundle.
    campplus = CAMPPlus(CAMPPlusDims(growth_rate=8, bn_size=2, init_channels=16, m_channels=4, block_layers=(2, 2, 2)))
    write_campplus_onnx(randomize_(campplus, gen).eval(), folder / "campplus.onnx")
    return folder


def write_campplus_onnx(model: CAMPPlus, path: str | os.PathLike) -> None:
    """Export ``model`` the way the release's file was made, for the tiny CAM++ of test bundles.

    TorchScript exporter, opset 13, constant folding, input "input" (batch, frames, feat_dim),
    output "output". Node names are the module scopes as in the release, and the weights of the
    convs that carry a folded BN get anonymous ``onnx::Conv_*`` names as there, so reading the
    file back takes the same path as reading the release and gives identical tensors.
    """
    param = next(model.parameters())
    example = torch.zeros(1, 200, model.dims.feat_dim, device=param.device, dtype=param.dtype)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which names nodes differently.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=13, do_constant_folding=True,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch", 1: "frames"}, "output": {0: "batch"}},
        )
    exported = onnx.load_from_string(buffer.getvalue())
    # In the released topology every biased conv outside the CAM gates is a conv+BN fold.
    folded = [
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.bias is not None and ".cam_layer." not in name
        for p in ("weight", "bias")
    ]
    renames = {old: f"onnx::Conv_{i}" for i, old in enumerate(folded)}
    for tensor in exported.graph.initializer:
        tensor.name = renames.get(tensor.name, tensor.name)
    for node in exported.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
    onnx.save(exported, str(path))
