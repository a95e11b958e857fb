"""Long-form cloning: text longer than one generation is split at sentence ends and the pieces joined.

One LM generation should stay under about 30 s of audio (the model's stated limit). We budget
text by an estimate of its spoken length - CJK characters take about three times as long to say
as Latin letters - and cut at the strongest boundary that keeps each piece within budget:
sentence ends first, then clause marks, then spaces, and only as a last resort inside a word.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Budget units per piece: ~300 Latin characters or ~100 CJK characters, roughly 20 s of speech.
MAX_UNITS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；…])[\"'”’」』)）]*\s*|\n+")
_CLAUSE = re.compile(r"(?<=[,:，、：])\s*")


def _is_wide(ch: str) -> bool:
    o = ord(ch)
    return 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0x3040 <= o <= 0x30FF


def spoken_units(text: str) -> int:
    """A length proxy for speaking time: 3 per CJK/kana/hangul character, 1 per other non-space."""
    return sum(3 if _is_wide(c) else 1 for c in text if not c.isspace())


def _pieces(text: str, pattern: re.Pattern) -> list[str]:
    parts, start = [], 0
    for m in pattern.finditer(text):
        if m.end() > start and text[start:m.end()].strip():
            parts.append(text[start:m.end()])
            start = m.end()
    if text[start:].strip():
        parts.append(text[start:])
    return parts


def _hard_split(text: str, max_units: int) -> list[str]:
    words = re.findall(r"\S+\s*", text) if " " in text.strip() else list(text)
    out, cur = [], ""
    for w in words:
        if cur and spoken_units(cur + w) > max_units:
            out.append(cur)
            cur = ""
        if spoken_units(w) > max_units:  # one enormous 'word': cut by characters
            for ch in w:
                if cur and spoken_units(cur + ch) > max_units:
                    out.append(cur)
                    cur = ""
                cur += ch
        else:
            cur += w
    return out + ([cur] if cur.strip() else [])


def split_text(text: str, max_units: int = MAX_UNITS) -> list[str]:
    """Split ``text`` into pieces of at most ``max_units`` spoken units, packing whole sentences."""
    text = text.strip()
    if spoken_units(text) <= max_units:
        return [text] if text else []
    units: list[str] = []
    for sentence in _pieces(text, _SENTENCE_END):
        if spoken_units(sentence) <= max_units:
            units.append(sentence)
            continue
        for clause in _pieces(sentence, _CLAUSE):
            units += [clause] if spoken_units(clause) <= max_units else _hard_split(clause, max_units)
    pieces, cur = [], ""
    for u in units:
        if cur and spoken_units(cur + u) > max_units:
            pieces.append(cur.strip())
            cur = ""
        cur += u
    if cur.strip():
        pieces.append(cur.strip())
    return pieces


def crossfade_join(clips: list[torch.Tensor], sample_rate: int, fade_seconds: float = 0.05) -> torch.Tensor:
    """Join mono clips (N,) with an equal-power crossfade of ``fade_seconds`` between neighbours."""
    import torch  # here: splitting text (the CLI's checks) must not pay for importing torch

    if not clips:
        return torch.zeros(0)
    out = clips[0].float()
    for clip in clips[1:]:
        clip = clip.float()
        n = min(int(fade_seconds * sample_rate), out.shape[-1], clip.shape[-1])
        if n == 0:
            out = torch.cat([out, clip])
            continue
        t = torch.linspace(0, 1, n)
        fade_in, fade_out = torch.sin(t * torch.pi / 2), torch.cos(t * torch.pi / 2)
        mixed = out[-n:] * fade_out + clip[:n] * fade_in
        out = torch.cat([out[:-n], mixed, clip[n:]])
    return out
