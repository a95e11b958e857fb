"""The Step1 audio LM of Step-Audio-EditX: model, loader, text tokenizer, prompts, generation.

The edit types and options the prompts accept live in ``stepaudio_core.edits``; the audio-code
layout (how audio codes sit in the vocabulary) in ``stepaudio_core.codes``.

Nothing here imports transformers; bitsandbytes is imported only when quantization is asked for.
"""

from .config import Step1Config
from .generate import Sampling, generate_audio_codes, generate_ids, max_new_tokens_for
from .load import load_step1
from .model import KVCache, Step1ForCausalLM
from .prompts import clone_prompt_ids, clone_speaker_id, edit_instruction, edit_prompt_ids
from .text_tokenizer import TextTokenizer

__all__ = [
    "KVCache",
    "Sampling",
    "Step1Config",
    "Step1ForCausalLM",
    "TextTokenizer",
    "clone_prompt_ids",
    "clone_speaker_id",
    "edit_instruction",
    "edit_prompt_ids",
    "generate_audio_codes",
    "generate_ids",
    "load_step1",
    "max_new_tokens_for",
]
