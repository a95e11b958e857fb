"""Editing a recording of any length: cut at pauses, edit each piece, join with the pauses between.

The model edits at most 30 s. A longer recording is cut inside pauses into pieces of at most
``max_piece_seconds`` (``segment``), each piece gets its part of the transcript, and each is
encoded, edited with the same instruction and decoded in its own voice (the piece's prompt, as a
short edit is decoded in the recording's). The pauses themselves are not edited: they are put back
between the edited pieces with short equal-power crossfades that lie inside the pause, so no join
falls inside speech. Two edit types treat pauses differently, because pauses are what they edit:

- vad (remove silence) edits each piece and shortens every pause between pieces to at most
  ``VAD_PAUSE_SECONDS``: the long silences it would have removed are exactly the cut pauses.
- denoise keeps each pause's length but not its content: a pause holds only the background noise
  that denoise removes, so it becomes silence.

The transcript of each piece:
- with word timings (speech recognition, optional), each word belongs to the piece holding its
  middle, and a typed transcript is split in the same proportions of spoken length;
- without them, the typed transcript is split in proportion to each piece's seconds of sound,
  counting spoken length with ``longform.spoken_units`` (a CJK character counts three), and the
  split is moved to the nearest sentence or clause end within a few words. Speech whose rate
  changes a lot (a fast piece beside a slow one) shifts that split by a few words; a piece's edit
  then reads a transcript that starts or ends a few words off, which weakens emotion and style
  edits near the joins and can misplace a paralinguistic sound by those words. Word timings fix
  it.
- with an empty transcript, a ``transcriber`` (optional) transcribes each piece.

Paralinguistic ``new_text`` is split like the transcript; each tag stays with the word before it.
A piece whose new text holds no tag is kept unedited (the edit would only re-synthesise it).

Memory: only one piece is encoded, edited and decoded at a time; each piece's prompt (its codes,
mel and voice, with its audio a view of the recording) is kept for decoding. The handle's prompt
cache is not filled with pieces.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .audio import pcm16_round_trip, resample
from .edits import EDIT_TYPES
from .errors import InputError
from .limits import WINDOW_SECONDS
from .longform import spoken_units
from .prompt import EncodedPrompt, GeneratedTokens
from .segment import Segmentation, Span, segment
from .transcript import Transcript, WordTiming

log = logging.getLogger(__name__)

OUTPUT_RATE = 24000
FADE_SECONDS = 0.05  # each join's crossfade; pauses are at least MIN_PAUSE_SECONDS, so it fits inside one
VAD_PAUSE_SECONDS = 0.3  # what vad leaves of a pause between pieces: a short breath, not a gap
Transcriber = Callable[[torch.Tensor, int], Transcript]
Words = Transcript | Sequence[WordTiming] | None

_WIDE = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TAIL = ".,!?;:…'\"”’)）」』、。，！？；："
_TOKEN = re.compile(rf"\[[^\[\]]{{1,40}}\]\s*|(?:[{_WIDE}]|[^\s{_WIDE}\[]+|\[)[{_TAIL}]*\s*")
_TAG = re.compile(r"\[[^\[\]]{1,40}\]")
_SENTENCE_END, _CLAUSE_END = set(".!?;…。！？；"), set(",:，、：")


def piece_seed(seed: int, index: int) -> int:
    """A seed for piece ``index`` derived from the node's seed: independent per piece, with room for +pass."""
    digest = hashlib.sha256(f"{int(seed)}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


# ---------------------------------------------------------------------- transcript per piece


def text_tokens(text: str) -> list[str]:
    """``text`` as words (each CJK character its own), trailing punctuation and space attached; joins back to ``text``."""
    tokens, at = [], 0
    for m in _TOKEN.finditer(text):
        if m.start() > at:  # characters no pattern takes (leading space): keep them with a neighbour
            if tokens:
                tokens[-1] += text[at : m.start()]
            else:
                tokens.append(text[at : m.start()])
        tokens.append(m.group())
        at = m.end()
    if at < len(text):
        tokens.append(text[at:]) if not tokens else tokens.__setitem__(-1, tokens[-1] + text[at:])
    return tokens


def _is_tag(token: str) -> bool:
    return bool(_TAG.fullmatch(token.strip()))


def split_by_shares(text: str, shares: Sequence[float]) -> list[str]:
    """Split ``text`` into ``len(shares)`` parts whose spoken lengths follow ``shares``, at word boundaries.

    A boundary within a few words of the proportional one that ends a sentence (then a clause) is
    preferred; a tag is never separated from the word before it; every part gets at least one word
    while there are enough words.
    """
    n = len(shares)
    tokens = text_tokens(text.strip())
    if n == 1 or not tokens:
        return [text.strip()] + [""] * (n - 1)
    units = [0 if _is_tag(t) else spoken_units(t) for t in tokens]
    cum = [0]
    for u in units:
        cum.append(cum[-1] + u)
    total_units, total_share = cum[-1], sum(shares)
    m = len(tokens)
    words = [b for b in range(m) if units[b] > 0]
    window = max(8.0, 0.2 * total_units / n)
    cuts, prev, acc = [], 0, 0.0
    for i in range(n - 1):
        acc += shares[i]
        target = total_units * (acc / total_share if total_share > 0 else (i + 1) / n)
        # cut before token b: b must not be a tag (tags stay with the word before them)
        low = prev + 1 if len(words) >= n else prev
        high = m - (n - 1 - i) if len(words) >= n else m
        allowed = [b for b in range(max(low, 1), high + 1) if b == m or not _is_tag(tokens[b])] or [
            max(prev, min(high, m))
        ]
        near = [b for b in allowed if abs(cum[b] - target) <= window]

        def rank(b: int, target: float = target) -> tuple[int, float]:
            # the punctuation of the last word before the cut; a tag after a sentence end keeps it one
            last = next((tokens[j] for j in range(b - 1, -1, -1) if not _is_tag(tokens[j])), "")
            end = last.rstrip()[-1:]
            strength = 0 if end in _SENTENCE_END else 1 if end in _CLAUSE_END else 2
            return strength, abs(cum[b] - target)

        b = min(near, key=rank) if near else min(allowed, key=lambda b: abs(cum[b] - target))
        cuts.append(b)
        prev = b
    bounds = [0, *cuts, m]
    return ["".join(tokens[a:b]).strip() for a, b in zip(bounds, bounds[1:])]


def _words(words: Words) -> tuple[WordTiming, ...]:
    if words is None:
        return ()
    return tuple(words.words if isinstance(words, Transcript) else words)


def _join_words(words: Sequence[WordTiming]) -> str:
    out = ""
    for w in words:
        t = w.text.strip()
        wide = bool(t) and bool(out) and bool(re.match(f"[{_WIDE}]", t[0])) and bool(re.match(f"[{_WIDE}]", out[-1]))
        out += t if not out or wide else " " + t
    return out


def word_shares(layout: Segmentation, words: Sequence[WordTiming]) -> list[list[WordTiming]]:
    """The words of each piece: each word goes to the piece its middle falls in (a pause counts with the piece before)."""
    starts = [p.start / layout.sample_rate for p in layout.pieces[1:]]
    out: list[list[WordTiming]] = [[] for _ in layout.pieces]
    for w in words:
        mid = (w.start + w.end) / 2
        out[sum(1 for s in starts if mid >= s)].append(w)
    return out


@dataclass(frozen=True)
class Plan:
    """Where the recording is cut, and what each piece says before and after the edit."""

    layout: Segmentation
    texts: tuple[str, ...]
    new_texts: tuple[str | None, ...]
    editable: tuple[bool, ...]


def plan(
    prompt: EncodedPrompt,
    edit_type: str,
    new_text: str | None,
    max_piece_seconds: float,
    *,
    words: Words = None,
    transcriber: Transcriber | None = None,
) -> Plan:
    """Segment the recording of ``prompt`` and give each piece its transcript (and new text)."""
    kind = EDIT_TYPES[edit_type]  # the facade checked the type
    timings = _words(words)
    layout = segment(prompt.audio, prompt.sample_rate, max_piece_seconds, words=timings or None)
    n = len(layout.pieces)
    by_piece = word_shares(layout, timings) if timings else None
    shares = [sum(spoken_units(w.text) for w in ws) for ws in by_piece] if by_piece else list(layout.voiced)
    if prompt.text:
        texts = split_by_shares(prompt.text, shares)
    elif by_piece:
        texts = [_join_words(ws) for ws in by_piece]
    elif transcriber is not None and kind.needs_audio_text:
        texts = [transcriber(prompt.audio[s.start : s.end], prompt.sample_rate).text.strip() for s in layout.pieces]
    else:
        texts = [""] * n
    if kind.needs_audio_text and not any(texts):
        raise InputError(
            f"the {edit_type} edit needs the transcript of the recording; write it in the Encode transcript"
        )
    editable = [bool(t) or not kind.needs_audio_text for t in texts]
    new_texts: list[str | None] = [None] * n
    if kind.needs_new_text and new_text:
        new_texts = list(split_by_shares(new_text, shares))
        editable = [e and bool(_TAG.search(t or "")) for e, t in zip(editable, new_texts)]
        if not any(editable):
            from .validate import warn_untagged_paralinguistic

            warn_untagged_paralinguistic(new_text)  # every piece stays as it is: say why once
    for i, (t, e) in enumerate(zip(texts, editable)):
        if not e:
            why = "its new text holds no tag" if kind.needs_new_text and t else "no words of the transcript fall in it"
            log.info("long edit: piece %d of %d is kept unedited: %s", i + 1, n, why)
    return Plan(layout, tuple(texts), tuple(new_texts), tuple(editable))


# ---------------------------------------------------------------------- the tokens of a long edit


@dataclass(frozen=True, eq=False)
class LongEditTokens(GeneratedTokens):
    """A long recording's edit: one ``GeneratedTokens`` per piece (None: the piece is kept as it is).

    Each part carries its piece's prompt (the voice it decodes in); ``prompt`` is the whole
    recording, from which the pauses and unedited pieces are taken when decoding.
    """

    parts: tuple[GeneratedTokens | None, ...] = ()
    layout: Segmentation | None = None
    edit_type: str = ""

    @property
    def seconds(self) -> float:
        sr = self.layout.sample_rate
        kept = sum(len(s) for s, p in zip(self.layout.pieces, self.parts) if p is None)
        return sum(p.seconds for p in self.parts if p is not None) + (kept + sum(map(len, self.layout.pauses))) / sr


def _long_tokens(
    prompt: EncodedPrompt, plan_: Plan, parts: list[GeneratedTokens | None], edit_type: str
) -> LongEditTokens:
    text = " ".join(p.text if p is not None else t for p, t in zip(parts, plan_.texts) if (p.text if p else t))
    return LongEditTokens(
        tuple(x for p in parts if p is not None for x in p.pieces), prompt, text, tuple(parts), plan_.layout, edit_type
    )


# ---------------------------------------------------------------------- decoding and joining


def _original(prompt: EncodedPrompt, span: Span) -> torch.Tensor:
    return resample(prompt.audio[span.start : span.end].float(), prompt.sample_rate, OUTPUT_RATE)


def pause_clip(prompt: EncodedPrompt, span: Span, edit_type: str) -> torch.Tensor:
    """What goes back between two edited pieces (see the module docstring for vad and denoise)."""
    if len(span) == 0:
        return torch.zeros(0)
    if edit_type == "vad":
        span = Span(span.start, min(span.end, span.start + int(VAD_PAUSE_SECONDS * prompt.sample_rate)))
    clip = _original(prompt, span)
    return torch.zeros_like(clip) if edit_type == "denoise" else clip


def join_clips(clips: Sequence[torch.Tensor], sample_rate: int = OUTPUT_RATE, fade_seconds: float = FADE_SECONDS):
    """Join mono clips with equal-power crossfades; returns (waveform, [(start, end) of each crossfade]).

    Writes into one preallocated buffer, so joining costs the output's memory once. A crossfade is
    at most half of either clip, so a short pause still lies between two whole fades.
    """
    clips = [c.float() for c in clips if c.shape[-1] > 0]
    if not clips:
        return torch.zeros(0), []
    fade = int(fade_seconds * sample_rate)
    overlaps = [min(fade, a.shape[-1] // 2, b.shape[-1] // 2) for a, b in zip(clips, clips[1:])]
    out = torch.empty(sum(c.shape[-1] for c in clips) - sum(overlaps))
    out[: clips[0].shape[-1]] = clips[0]
    pos, joints = clips[0].shape[-1], []
    for clip, n in zip(clips[1:], overlaps):
        if n:
            t = torch.linspace(0, 1, n)
            head = out[pos - n : pos] * torch.cos(t * torch.pi / 2) + clip[:n] * torch.sin(t * torch.pi / 2)
            out[pos - n : pos] = head
        out[pos : pos + clip.shape[-1] - n] = clip[n:]
        joints.append((pos - n, pos))
        pos += clip.shape[-1] - n
    return out, joints


def decode_clips(
    model,
    tokens: LongEditTokens,
    *,
    voice: EncodedPrompt | None = None,
    seed: int = 0,
    flow_steps: int = 10,
) -> list[torch.Tensor]:
    """Piece 0, pause 0, piece 1, ...: each edited piece decoded in its own voice (or ``voice``), the rest original."""
    layout, clips = tokens.layout, []
    for i, (span, part) in enumerate(zip(layout.pieces, tokens.parts)):
        if part is None:
            clips.append(_original(tokens.prompt, span))
        else:
            clips.append(model.decode(part, prompt=voice, seed=piece_seed(seed, i), flow_steps=flow_steps))
        if i < len(layout.pauses):
            clips.append(pause_clip(tokens.prompt, layout.pauses[i], tokens.edit_type))
    return clips


def decode_long(model, tokens: LongEditTokens, **kwargs) -> torch.Tensor:
    """A long edit as one 24 kHz waveform: pieces and pauses joined with crossfades inside the pauses."""
    return join_clips(decode_clips(model, tokens, **kwargs))[0]


# ---------------------------------------------------------------------- the use cases


def _encode_piece(model, prompt: EncodedPrompt, span: Span, text: str, index: int, n: int) -> EncodedPrompt | None:
    try:
        return model.encode(prompt.audio[span.start : span.end], prompt.sample_rate, text, cache=False)
    except InputError as e:
        if type(e).__name__ == "NotEnoughMemoryError":
            raise
        log.warning(
            "long edit: piece %d of %d (%.1f-%.1f s) is kept unedited: %s",
            index + 1,
            n,
            span.start / prompt.sample_rate,
            span.end / prompt.sample_rate,
            e,
        )
        return None


def edit_long(
    model,
    prompt: EncodedPrompt,
    edit_type: str,
    option: str | None,
    *,
    new_text: str | None,
    seed: int,
    max_piece_seconds: float,
    max_seconds: float | None = None,
    on_token=None,
    on_piece: Callable[[int, int], None] | None = None,
    words: Words = None,
    transcriber: Transcriber | None = None,
) -> LongEditTokens:
    """One edit pass over a recording of any length; decode the result with ``decode_long`` (the facade's decode)."""
    return iterate_long(
        model,
        prompt,
        edit_type,
        option,
        new_text=new_text,
        n_iter=1,
        seed=seed,
        max_piece_seconds=max_piece_seconds,
        max_seconds=max_seconds,
        on_token=on_token,
        on_piece=on_piece,
        words=words,
        transcriber=transcriber,
        decode=False,
    )[0][0]


def iterate_long(
    model,
    prompt: EncodedPrompt,
    edit_type: str,
    option: str | None,
    *,
    new_text: str | None,
    n_iter: int,
    seed: int,
    max_piece_seconds: float,
    mode: str = "audio",
    flow_steps: int = 10,
    max_seconds: float | None = None,
    on_token=None,
    on_pass: Callable[[int], None] | None = None,
    on_piece: Callable[[int, int], None] | None = None,
    words: Words = None,
    transcriber: Transcriber | None = None,
    decode: bool = True,
    on_result: Callable[[int, torch.Tensor], None] | None = None,
) -> list[tuple[LongEditTokens, torch.Tensor | None]]:
    """``n_iter`` passes over the whole recording, each piece edited on its previous pass; every pass returned.

    Passes run in order and, within a pass, pieces one at a time: piece i of pass k edits piece i
    of pass k - 1 (re-encoded from its audio, or its tokens in mode "tokens", as ``iterate_edit``
    does for a short recording), with seed ``piece_seed(seed, i) + k``. ``on_result(k, wav)`` gets
    each whole pass as soon as it is joined.
    """

    p = plan(prompt, edit_type, new_text, max_piece_seconds, words=words, transcriber=transcriber)
    n = len(p.layout.pieces)
    editable = list(p.editable)
    first: list[EncodedPrompt | None] = [None] * n
    current: list[EncodedPrompt | None] = [None] * n
    results = []
    for k in range(n_iter):
        if on_pass is not None:
            on_pass(k)
        parts: list[GeneratedTokens | None] = []
        clips: list[torch.Tensor] = []
        for i, span in enumerate(p.layout.pieces):
            if on_piece is not None:
                on_piece(i, n)
            if editable[i] and current[i] is None:
                current[i] = first[i] = _encode_piece(model, prompt, span, p.texts[i], i, n)
                editable[i] = current[i] is not None
            if not editable[i]:
                parts.append(None)
                if decode:
                    clips.append(_original(prompt, span))
            else:
                # a piece's later passes are edited whole (within the window) even when they grew past
                # max_piece_seconds: the piece is the unit that keeps its transcript
                tokens = model.edit(
                    current[i],
                    edit_type,
                    option,
                    new_text=p.new_texts[i],
                    seed=piece_seed(seed, i) + k,
                    on_token=on_token,
                    max_seconds=max_seconds,
                    max_piece_seconds=WINDOW_SECONDS,
                )
                if mode == "tokens":
                    tokens = replace(tokens, prompt=first[i])  # decoded in the piece's own recorded voice
                parts.append(tokens)
                if decode:
                    wav = model.decode(tokens, seed=piece_seed(seed, i), flow_steps=flow_steps)
                    clips.append(wav)
                if k + 1 < n_iter:
                    if mode == "tokens":
                        current[i] = replace(current[i], tokens=tokens.tokens, text=tokens.text)
                    else:
                        try:
                            current[i] = model.encode(
                                pcm16_round_trip(wav)[None], OUTPUT_RATE, tokens.text, cache=False
                            )
                        except InputError as e:
                            if type(e).__name__ == "NotEnoughMemoryError":
                                raise
                            raise InputError(
                                f"edit pass {k + 1} produced audio for piece {i + 1} of {n} that cannot be edited "
                                f"again ({e}); run fewer passes or try another seed"
                            ) from None
            if decode and i < len(p.layout.pauses):
                clips.append(pause_clip(prompt, p.layout.pauses[i], edit_type))
        wav = join_clips(clips)[0] if decode else None
        results.append((_long_tokens(prompt, p, parts, edit_type), wav))
        if on_result is not None and wav is not None:
            on_result(k, wav)
    return results


def transcribed(prompt: EncodedPrompt, transcriber: Transcriber | None, max_piece_seconds: float) -> EncodedPrompt:
    """``prompt`` with the transcriber's text when it has none and is edited whole (a long one: per piece)."""
    if transcriber is None or prompt.text or prompt.seconds > max_piece_seconds:
        return prompt
    return replace(prompt, text=transcriber(prompt.audio, prompt.sample_rate).text.strip())
