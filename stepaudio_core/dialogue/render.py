"""Rendering a dialogue script over the facade: per line, Clone (+ one Edit pass) -> Decode, then join + SRT.

Every line gets its own seed, derived from the script's seed and what the line is (speaker, text,
instruction, language, and which repeat of an identical line it is), never from its position. So
editing, inserting or deleting one line leaves every other line's seed - and, through the session's
line cache, its audio - as it was: only the changed line is generated again.

A line with an instruction is edited the way the reference edits a clone: the clone is decoded,
written as 16-bit audio, encoded again with its text, and edited once. Long lines are split as
Clone splits them (``longform.split_text``), each piece cloned (and edited) on its own, and the
pieces crossfaded as Decode joins them. Lines are joined with exact sample counts of silence, so
the subtitles' times come from the same integer offsets as the audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .. import validate
from ..audio import pcm16_round_trip
from ..errors import InputError
from ..limits import DEFAULT_FLOW_STEPS, DEFAULT_PAUSE_SECONDS, DEFAULT_TEMPERATURE
from ..longform import crossfade_join, split_text
from ..prompt import EncodedPrompt
from ..subtitles import Cue, to_srt
from .cache import LineCache
from .script import Script, ScriptLine, parse_script

log = logging.getLogger(__name__)

PassCallback = Callable[[int, int], None]  # (generation index, generations in this render)


@dataclass(frozen=True)
class RenderedLine:
    line: ScriptLine
    audio: torch.Tensor  # (N,) float32 at the dialogue's sample rate
    start: int  # first sample of the line in the joined audio
    seed: int
    reused: bool  # served from the session's line cache

    @property
    def end(self) -> int:
        return self.start + self.audio.shape[-1]


@dataclass(frozen=True)
class Dialogue:
    audio: torch.Tensor  # (N,) the whole scene
    sample_rate: int
    lines: tuple[RenderedLine, ...]

    def cues(self) -> list[Cue]:
        return [Cue(r.start, r.end, f"{r.line.speaker}: {r.line.text}") for r in self.lines]

    def srt(self) -> str:
        return to_srt(self.cues(), self.sample_rate)


def line_seed(seed: int, line: ScriptLine, repeat: int = 0) -> int:
    """The seed of one line: a hash of the script seed and the line's content, below 2^62 (room for + piece)."""
    content = [int(seed), line.speaker, line.text, str(line.instruction or ""), line.language or "", repeat]
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def voice_key(prompt: EncodedPrompt) -> str:
    """What identifies a voice to the models: its LM prompt (id, transcript, codes) and its decoder conditioning."""
    h = hashlib.sha256(json.dumps([prompt.speaker_id, prompt.text, list(prompt.tokens)]).encode("utf-8"))
    for t in (prompt.mel, prompt.speaker):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_pause(pause) -> float:
    return validate.check_pause(pause)


def render_dialogue(
    handle,
    voices: Mapping[str, EncodedPrompt],
    script: str | Script,
    *,
    seed: int = 0,
    pause: float = DEFAULT_PAUSE_SECONDS,
    temperature: float = DEFAULT_TEMPERATURE,
    flow_steps: int = DEFAULT_FLOW_STEPS,
    max_seconds: float | None = None,
    how_to_add: Callable[[str], str] | None = None,
    cache: LineCache | None = None,
    on_pass: PassCallback | None = None,
    on_token: Callable[[int, int], None] | None = None,
) -> Dialogue:
    """Speak ``script`` with ``voices`` (name -> encoded prompt with its transcript) on the facade ``handle``.

    ``cache`` defaults to the handle's ``line_cache``; ``on_pass`` is called before each LM generation.
    Lines finished before an error or a cancel stay cached, so the next run goes on from there.
    """
    # every argument is checked before the first line is generated, not when a line reaches it
    pause, seed = _check_pause(pause), validate.check_seed(seed)
    temperature, flow_steps = validate.check_temperature(temperature), validate.check_flow_steps(flow_steps)
    max_seconds = validate.check_max_seconds(max_seconds)
    if isinstance(script, str):
        script = parse_script(script, voices, **({"how_to_add": how_to_add} if how_to_add else {}))
    for line in script.lines:
        if line.speaker not in voices:
            raise InputError(
                f"script line {line.number}: speaker '{line.speaker}' has no voice (voices: "
                f"{', '.join(voices) or 'none'})"
            )
    for name in {line.speaker for line in script.lines}:
        if not voices[name].text:
            raise InputError(
                f"the voice of '{name}' has no transcript; write what its recording says in its "
                "StepAudio Encode transcript (cloning needs it)"
            )
    cache = cache if cache is not None else getattr(handle, "line_cache", None)
    rate = handle.sample_rate
    keys = {name: voice_key(p) for name, p in voices.items() if any(line.speaker == name for line in script.lines)}

    plans, repeats = [], {}
    for line in script.lines:
        ident = (line.speaker, line.text, line.instruction, line.language)
        repeats[ident] = repeats.get(ident, -1) + 1
        s = line_seed(seed, line, repeats[ident])
        key = json.dumps(
            [
                keys[line.speaker],
                line.text,
                str(line.instruction or ""),
                line.language or "",
                s,
                float(temperature),
                int(flow_steps),
                max_seconds,
            ],
            ensure_ascii=False,
        )
        wav = cache.get(key) if cache is not None else None
        plans.append((line, s, key, wav))
    total = sum(len(split_text(line.text)) * (2 if line.instruction else 1) for line, _, _, wav in plans if wav is None)
    done = 0

    def next_pass() -> None:
        nonlocal done
        if on_pass is not None:
            on_pass(done, total)
        done += 1

    rendered, offset, parts = [], 0, []
    for i, (line, s, key, wav) in enumerate(plans):
        reused = wav is not None
        if not reused:
            try:
                wav = _render_line(
                    handle, voices[line.speaker], line, s, temperature, flow_steps, max_seconds, next_pass, on_token
                )
            except InputError as e:
                raise type(e)(f"script line {line.number} ({line.speaker}): {e}") from None
            if cache is not None:
                cache.put(key, wav)
        gap = line.pause_before if line.pause_before is not None else (pause if i else 0.0)
        silence = round(gap * rate)
        parts += [torch.zeros(silence), wav]
        offset += silence
        rendered.append(RenderedLine(line, wav, offset, s, reused))
        offset += wav.shape[-1]
    parts.append(torch.zeros(round(script.pause_after * rate)))
    audio = torch.cat(parts)
    log.info(
        "dialogue: %d lines, %d generated, %d reused from this session, %.1f s",
        len(rendered),
        sum(not r.reused for r in rendered),
        sum(r.reused for r in rendered),
        audio.shape[-1] / rate,
    )
    return Dialogue(audio, rate, tuple(rendered))


def _render_line(
    handle,
    voice: EncodedPrompt,
    line: ScriptLine,
    seed: int,
    temperature: float,
    flow_steps: int,
    max_seconds: float | None,
    next_pass: Callable[[], None],
    on_token,
) -> torch.Tensor:
    clips = []
    for i, piece in enumerate(split_text(line.text)):
        next_pass()
        tokens = handle.clone(
            voice,
            piece,
            language=line.language,
            seed=seed + i,
            temperature=temperature,
            max_seconds=max_seconds,
            on_token=on_token,
        )
        wav = handle.decode(tokens, seed=seed, flow_steps=flow_steps)
        if line.instruction is not None:
            next_pass()
            cloned = handle.encode(pcm16_round_trip(wav)[None], handle.sample_rate, piece)
            edited = handle.edit(
                cloned,
                line.instruction.edit_type,
                line.instruction.option,
                seed=seed + i,
                temperature=temperature,
                on_token=on_token,
            )
            wav = handle.decode(edited, seed=seed, flow_steps=flow_steps)
        clips.append(wav.float().cpu())
    return crossfade_join(clips, handle.sample_rate)
