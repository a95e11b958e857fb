"""Tiny, randomly initialised model folders in the real file layout.

The same loaders that read the released 8 GB download read these few-MB folders, so tests and
example workflows exercise the real loading code end to end. Random weights make noise, not
speech; what the tests check is shapes, lengths, determinism and the plumbing.

    python -m stepaudio_core.testing tiny-bundle OUT_DIR [--awq]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from .bundle import DECODER_DIR, LM_DIR, TOKENIZER_DIR

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


def randomize_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Give every floating tensor a non-trivial value (zero-initialised gates would silence a DiT).

    Matrices ~ U(+-1/sqrt(fan_in)); 1-D weights, scales and alphas ~ 1 + 0.1 N; other vectors ~ 0.1 N;
    BatchNorm variances ~ U(0.5, 1.5).
    """
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() >= 2:
                bound = 1.0 / math.sqrt(max(1, t[0].numel()))
                t.copy_(torch.rand(t.shape, generator=generator) * 2 * bound - bound)
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=generator))
            elif name.endswith(("weight", "alpha", "original0")):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=generator))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=generator))
    return module


def write_tiny_decoder(folder: Path, seed: int = 0) -> Path:
    """Write ``CosyVoice-300M-25Hz/`` (cosyvoice.yaml, flow.pt, hift.pt, campplus.onnx) into ``folder``."""
    from .decoder.campplus import CAMPPlus, CAMPPlusDims
    from .decoder.campplus_onnx import write_campplus_onnx
    from .decoder.config import DecoderConfig
    from .decoder.flow import CausalMaskedDiffWithXvec
    from .decoder.hift import HiFTGenerator

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


def write_tiny_bundle(out_dir: str | Path, seed: int = 0, awq: bool = False) -> Path:
    """Write a complete tiny model folder (what ``models/step_audio_editx`` holds) into ``out_dir``.

    ``Step-Audio-EditX/`` gets the LM files and ``CosyVoice-300M-25Hz/``; ``Step-Audio-Tokenizer/``
    gets the Paraformer encoder, k-means codebook and S3 tokenizer, all in the released formats.
    ``awq`` adds ``Step-Audio-EditX-AWQ-4bit/`` beside them: the same LM, 4-bit pack-quantized.
    """
    from .lm.testing import write_tiny_lm
    from .tokenizer.testing import write_tiny_tokenizer

    out_dir = Path(out_dir)
    write_tiny_lm(out_dir, seed=seed)
    write_tiny_decoder(out_dir / LM_DIR / DECODER_DIR, seed=seed)
    write_tiny_tokenizer(out_dir / TOKENIZER_DIR, seed=seed)
    if awq:
        from .lm.testing import write_tiny_awq_lm

        write_tiny_awq_lm(out_dir, seed=seed)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepaudio_core.testing", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny-bundle", help="write a tiny random model folder in the real layout")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--awq", action="store_true", help="also write Step-Audio-EditX-AWQ-4bit/ (the LM 4-bit packed)")
    args = parser.parse_args(argv)
    path = write_tiny_bundle(args.out_dir, seed=args.seed, awq=args.awq)
    print(f"wrote a tiny Step-Audio-EditX model folder to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
