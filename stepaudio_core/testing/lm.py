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
