"""A tiny Step-Audio-EditX LM folder in the real layout, for tests and examples.

``write_tiny_lm`` writes what the release's LM part holds (config.json with the release's keys,
model.safetensors.index.json + model-00001.safetensors in bf16, tokenizer.model,
tokenizer_config.json) with a 32-wide random model, so the same loader, tokenizer, prompts and
generation run end to end in seconds. Its sentencepiece model is trained on the prompt
templates on the fly, then laid out like the released one: <unk>, <s>, </s>, <|EOT|> = 3,
<|BOT|> = 4, byte pieces, text pieces, unused pieces up to 65535, and ``<audio_N>`` = 65536 + N
for N < 9216, 74752 ids in all.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import save_file

from ..codes import AUDIO_ID_OFFSET
from ..edits import EDIT_TYPES, PARALINGUISTIC_TAGS
from ..lm.config import Step1Config
from ..lm.model import Step1ForCausalLM
from ..lm.prompts import CLONE_SYSTEM_TEMPLATE, EDIT_SYSTEM_PROMPT, edit_instruction
from .random_weights import random_state

AUDIO_PIECES = 9216  # the release's <audio_0> .. <audio_9215>
TINY_CONFIG = {
    "architectures": ["Step1ForCausalLM"],
    "model_type": "step1",
    "bos_token_id": 1,
    "pad_token_id": 0,
    "eos_token_id": 3,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_attention_groups": 2,
    "num_hidden_layers": 2,
    "max_seq_len": 32768,
    "vocab_size": AUDIO_ID_OFFSET + AUDIO_PIECES,
    "rms_norm_eps": 1e-05,
    "torch_dtype": "bfloat16",
}
TOKENIZER_CONFIG = {
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": False,
    "model_max_length": 65536,
    "pad_token": "<unk>",
    "padding_side": "left",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}


def write_tiny_lm(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/Step-Audio-EditX/`` (the LM files only; other files there are kept); return it."""
    folder = Path(out_dir) / "Step-Audio-EditX"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer.model").write_bytes(tiny_sentencepiece_model())
    weights = {k: v.to(torch.bfloat16).contiguous() for k, v in tiny_weights(seed).items()}
    shard = "model-00001.safetensors"
    save_file(weights, str(folder / shard), metadata={"format": "pt"})
    index = {
        "metadata": {"total_size": sum(v.numel() * v.element_size() for v in weights.values())},
        "weight_map": dict.fromkeys(sorted(weights), shard),
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return folder


def tiny_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the tiny config, drawn from ``torch.Generator(seed)`` in key order."""
    state = Step1ForCausalLM(Step1Config.from_dict(TINY_CONFIG)).state_dict()
    return random_state(state, torch.Generator().manual_seed(seed))


def tiny_sentencepiece_model() -> bytes:
    """A sentencepiece model (bytes) with the release's special-id layout, trained in well under a second."""
    from sentencepiece import sentencepiece_model_pb2 as pb  # protobuf comes with onnx and sentencepiece

    lines = [*EDIT_SYSTEM_PROMPT.splitlines(), *CLONE_SYSTEM_TEMPLATE.splitlines(), "system", "human", "assistant"]
    text, tagged = "The quick brown fox jumps over the lazy dog.", "Hello [Laughter] there."
    for t in EDIT_TYPES.values():
        for option in t.options or (None,):
            lines += edit_instruction(t, option, text, tagged).splitlines()
    lines += ["Hello there, this is my reference voice.", "Please call Stella.", *PARALINGUISTIC_TAGS]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="unigram", vocab_size=400, hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, control_symbols=["<|EOT|>", "<|BOT|>"], byte_fallback=True,
        split_digits=True, normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
        character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    model = pb.ModelProto()
    model.ParseFromString(buf.getvalue())
    for i in range(len(model.pieces), AUDIO_ID_OFFSET):
        model.pieces.add(piece=f"<unused_{i}>", score=0.0, type=pb.ModelProto.SentencePiece.UNUSED)
    for n in range(AUDIO_PIECES):
        model.pieces.add(piece=f"<audio_{n}>", score=0.0, type=pb.ModelProto.SentencePiece.USER_DEFINED)
    model.trainer_spec.vocab_size = len(model.pieces)
    return model.SerializeToString()


def awq_quantization_config(num_bits: int, group_size: int | None, symmetric: bool) -> dict:
    """A ``quantization_config`` as llmcompressor writes it (compressed-tensors pack-quantized, lm_head ignored)."""
    weights = {
        "actorder": None,
        "block_structure": None,
        "dynamic": False,
        "group_size": group_size,
        "num_bits": num_bits,
        "observer": "minmax",
        "observer_kwargs": {},
        "strategy": "group" if group_size else "channel",
        "symmetric": symmetric,
        "type": "int",
    }
    group = {
        "format": "pack-quantized",
        "input_activations": None,
        "output_activations": None,
        "targets": ["Linear"],
        "weights": weights,
    }
    return {
        "config_groups": {"group_0": group},
        "format": "pack-quantized",
        "global_compression_ratio": None,
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
        "quant_method": "compressed-tensors",
        "quantization_status": "compressed",
        "sparsity_config": {},
        "transform_config": {},
        "version": "0.12.2",
    }


def pack_int32(codes: torch.Tensor, num_bits: int, dim: int = 1) -> torch.Tensor:
    """Signed codes -> int32 words, ``32 / num_bits`` per word along ``dim``, first field in the low bits."""
    per_word = 32 // num_bits
    fields = (codes.t() if dim == 0 else codes).to(torch.int64) + (1 << (num_bits - 1))
    fields = torch.nn.functional.pad(fields, (0, -fields.shape[1] % per_word)).view(fields.shape[0], -1, per_word)
    words = (fields << torch.arange(0, 32, num_bits)).sum(-1)
    words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)  # the same bits as a signed word
    return words.t().contiguous() if dim == 0 else words


def quantize_rtn(w: torch.Tensor, num_bits: int, group_size: int | None, symmetric: bool) -> dict[str, torch.Tensor]:
    """Round-to-nearest min/max quantization of one weight into the four pack-quantized tensors (scales fp32)."""
    out, n_in = w.shape
    g = w.float().view(out, -1, group_size or n_in)
    q_min, q_max = -(1 << (num_bits - 1)), (1 << (num_bits - 1)) - 1
    if symmetric:
        scale = g.abs().amax(-1) / ((q_max - q_min) / 2)
        zp = torch.zeros_like(scale, dtype=torch.int64)
    else:
        lo, hi = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)
        scale = (hi - lo) / (q_max - q_min)
        zp = torch.round(q_min - lo / scale.clamp(min=1e-12)).clamp(q_min, q_max).to(torch.int64)
    scale = scale.clamp(min=1e-12)
    codes = torch.round(g / scale.unsqueeze(-1)) + zp.unsqueeze(-1)
    codes = codes.clamp(q_min, q_max).to(torch.int64).view(out, n_in)
    tensors = {
        "weight_packed": pack_int32(codes, num_bits),
        "weight_scale": scale,
        "weight_shape": torch.tensor([out, n_in], dtype=torch.int64),
    }
    if not symmetric:
        tensors["weight_zero_point"] = pack_int32(zp, num_bits, dim=0)
    return tensors


def write_tiny_awq_lm(out_dir: Path, seed: int = 0, symmetric: bool = False, group_size: int = 16) -> Path:
    """Write ``out_dir/Step-Audio-EditX-AWQ-4bit/``: the tiny LM 4-bit quantized as the AWQ release stores it.

    Round-to-nearest stands in for AWQ's calibrated scales (same file format). Like the folder llmcompressor
    saves, it holds config.json (with ``quantization_config``), model.safetensors and the tokenizer files,
    but no CosyVoice-300M-25Hz/: the decoder comes from Step-Audio-EditX/ beside it.
    """
    folder = Path(out_dir) / "Step-Audio-EditX-AWQ-4bit"
    folder.mkdir(parents=True, exist_ok=True)
    config = {**TINY_CONFIG, "quantization_config": awq_quantization_config(4, group_size, symmetric)}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n", encoding="utf-8")
    (folder / "tokenizer.model").write_bytes(tiny_sentencepiece_model())
    weights = {}
    for key, w in tiny_weights(seed).items():
        if key.startswith("model.layers.") and key.endswith("_proj.weight"):
            for name, t in quantize_rtn(w, 4, group_size, symmetric).items():
                t = t.to(torch.bfloat16) if t.is_floating_point() else t  # scales in the model dtype
                weights[key[: -len("weight")] + name] = t.contiguous()
        else:
            weights[key] = w.to(torch.bfloat16).contiguous()
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
