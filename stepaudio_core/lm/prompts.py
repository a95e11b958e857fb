"""The LM's prompts: the exact strings and the exact ids of clone and edit prompts.

Strings and framing follow the reference (tts.py, config/prompts.py, config/edit_config.py;
docs lm.md 5). Framing "A" is the reference's: one ``encode`` per piece, each adding its own BOS,
so inner BOS ids sit inside the prompt. Framing "B" is the chat-template rendering that later
ports use: one BOS, and the user turn encoded together with its "human" header. The edit types
and options come from the pack's one registry, ``stepaudio_core.edits``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

from ..codes import MIXED_CODES, audio_token_string
from ..edits import EDIT_TYPES as EDIT_TYPES  # re-exported: callers may read the registry from here
from ..edits import LANGUAGE_TAGS, EditType
from ..errors import InputError
from .text_tokenizer import BOS, BOT, EOT, TextTokenizer

EDIT_SYSTEM_PROMPT = (
    "As a highly skilled audio editing and tuning specialist, you excel in interpreting user instructions and "
    "applying precise adjustments to meet their needs. Your expertise spans a wide range of enhancement "
    "capabilities, including but not limited to:\n# Emotional Enhancement\n# Speaking Style Transfer\n"
    "# Non-linguistic Adjustments\n# Audio Tuning & Editing\nNote: You will receive instructions in natural "
    "language and are expected to accurately interpret and execute the most suitable audio edits and "
    "enhancements.\n"
)
# "speaker prompt text: " and "speaker audio tokens: " end with a space before the newline
CLONE_SYSTEM_TEMPLATE = (
    "Generate audio with the following timbre, prosody and speaking style\n\n[speaker_start]\n"
    "speaker name: {speaker}\nspeaker prompt text: \n{prompt_text}\nspeaker audio tokens: \n"
    "{prompt_wav_tokens}\n[speaker_end]\n"
)
FRAMINGS = ("A", "B")


def edit_instruction(kind: EditType, option: str | None, audio_text: str, new_text: str | None = None) -> str:
    """The user instruction of an edit, as the reference builds it (quirks kept, docs lm.md 5.2).

    The type, option and texts were checked by the facade (``validate.check_edit_request``);
    ``option`` is ignored for types without options (vad, denoise, paralinguistic).
    """
    edit_type = kind.name
    audio_text = (audio_text or "").strip()
    if edit_type in ("emotion", "speed"):
        if option == "remove":
            return f"Remove any emotion in the following audio and the reference text is: {audio_text}\n"
        # speed options read "more faster" -> "more more faster": the reference's own wording
        return f"Make the following audio more {option}. The text corresponding to the audio is: {audio_text}\n"
    if edit_type == "style":
        if option == "remove":
            return f"Remove any speaking styles in the following audio and the reference text is: {audio_text}\n"
        return f"Make the following audio more {option} style. The text corresponding to the audio is: {audio_text}\n"
    if edit_type == "denoise":
        return (
            "Remove any noise from the given audio while preserving the voice content clearly. Ensure that the "
            "speech quality remains intact with minimal distortion, and eliminate all noise from the audio.\n"
        )
    if edit_type == "vad":
        return (
            "Remove any silent portions from the given audio while preserving the voice content clearly. Ensure "
            "that the speech quality remains intact with minimal distortion, and eliminate all silence from the "
            "audio.\n"
        )
    return (
        f"Add some non-verbal sounds to make the audio more natural, the new text is : {new_text}\n"
        f"  The text corresponding to the audio is: {audio_text}\n"
    )


def clone_speaker_id(prompt_text: str, waveform: torch.Tensor | np.ndarray) -> str:
    """The reference's speaker name: ``clone_`` + 16 hex digits of SHA-256 over the prompt text and
    the float32 bytes of the first and last 1000 samples of the waveform as loaded, (channels,
    samples) flattened channel-major, before any mixing or normalisation."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    flat = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
    sample = np.concatenate([flat[:1000], flat[-1000:]]) if flat.size > 2000 else flat
    h = hashlib.sha256(prompt_text.encode("utf-8"))
    h.update(sample.tobytes())
    return f"clone_{h.hexdigest()[:16]}"


def with_language_tag(text: str, language: str | None) -> str:
    """Prefix ``text`` with ``[Sichuanese]`` etc.; None, "none", Mandarin and English are untagged."""
    if language is None or language.strip().lower() in ("", "none", "mandarin", "english"):
        return text
    tag = {name.lower(): name for name in LANGUAGE_TAGS}.get(language.strip().lower())
    if tag is None:
        raise InputError(f"unknown language tag {language!r}; choose none or one of {', '.join(LANGUAGE_TAGS)}")
    return text if text.startswith(f"[{tag}]") else f"[{tag}]{text}"


def clone_system_prompt(speaker: str, prompt_text: str, prompt_codes: Sequence[int]) -> str:
    return CLONE_SYSTEM_TEMPLATE.format(
        speaker=speaker, prompt_text=prompt_text, prompt_wav_tokens=audio_token_string(_checked(prompt_codes))
    )


def clone_prompt_ids(
    tok: TextTokenizer,
    speaker: str,
    prompt_text: str,
    prompt_codes: Sequence[int],
    target_text: str,
    language: str | None = None,
    framing: str = "A",
) -> list[int]:
    """Prompt ids of a clone: speak ``target_text`` in the voice of the prompt audio."""
    if not target_text.strip():
        raise InputError("the text to speak is empty; type the text the cloned voice should say")
    system = clone_system_prompt(speaker, prompt_text, prompt_codes)
    target = with_language_tag(target_text, language)
    if _framing(framing) == "B":
        return _chat(tok, system, target)
    # the target is encoded after a newline whose ids are then cut off: no BOS, no leading "▁"
    user = tok.encode("\n" + target)[len(tok.encode("\n")) :]
    return _turns_a(tok, system, user)


def edit_prompt_ids(
    tok: TextTokenizer,
    kind: EditType,
    option: str | None,
    audio_text: str,
    prompt_codes: Sequence[int],
    new_text: str | None = None,
    framing: str = "A",
) -> list[int]:
    """Prompt ids of an edit of the audio whose mixed codes are ``prompt_codes``."""
    instruction = edit_instruction(kind, option, audio_text, new_text)
    user = instruction + "\n" + audio_token_string(_checked(prompt_codes)) + "\n"
    if _framing(framing) == "B":
        return _chat(tok, EDIT_SYSTEM_PROMPT, user)
    return _turns_a(tok, EDIT_SYSTEM_PROMPT, tok.encode(user))


def _turns_a(tok: TextTokenizer, system: str, user_ids: list[int]) -> list[int]:
    return (
        [BOS, BOT] + tok.encode("system\n" + system) + [EOT, BOT] + tok.encode("human\n") + user_ids
        + [EOT, BOT] + tok.encode("assistant\n")
    )


def _chat(tok: TextTokenizer, system: str, user: str) -> list[int]:
    return (
        [BOS, BOT] + tok.encode("system\n" + system, bos=False) + [EOT, BOT] + tok.encode("human\n" + user, bos=False)
        + [EOT, BOT] + tok.encode("assistant\n", bos=False)
    )


def _framing(framing: str) -> str:
    if framing not in FRAMINGS:
        raise InputError(f"prompt framing must be 'A' (the reference's) or 'B' (chat template), not {framing!r}")
    return framing


def _checked(codes: Sequence[int]) -> list[int]:
    codes = [int(c) for c in (codes.flatten().tolist() if isinstance(codes, torch.Tensor) else codes)]
    if not codes:
        raise InputError("the prompt has no audio tokens; encode a reference audio clip first")
    bad = [c for c in codes if not 0 <= c < MIXED_CODES]
    if bad:
        raise InputError(
            f"prompt audio codes must lie in 0..{MIXED_CODES - 1} (vq02, then 1024 + vq06); "
            f"got {bad[0]}. Encode the prompt with this pack's audio tokenizer."
        )
    return codes
