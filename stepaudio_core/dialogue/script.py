"""Dialogue scripts: one spoken line per script line, each naming its speaker.

    # a comment; blank lines are skipped
    [Alice] Hello there!
    [Bob|happy] Oh, hi! [Laughter]
    [pause 1.5]
    [Alice|style:whisper] Not so loud.
    [Bob|Cantonese|faster] ...

The header ``[Name]`` or ``[Name|instruction|...]`` starts every spoken line. An instruction is an
emotion, style or speed option of the edit registry (applied as one edit pass on the line's cloned
audio) or a language tag (put before the text, as Clone's language input does); an option that
two edit types share (``remove``) is written ``type:option``. ``[pause S]`` (seconds, or ``700ms``) on its
own line, or at the start or end of a spoken line, sets the silence at that point instead of the
default pause. Full-width brackets, bar and colon (``【小明｜happy】``, ``［Bob：faster］``) work too.
Every problem is one InputError naming the script line and what to do.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..edits import EDIT_TYPES, LANGUAGE_TAGS, PARALINGUISTIC_TAGS
from ..errors import InputError
from ..limits import MAX_PAUSE_SECONDS, MAX_SCRIPT_LINES

log = logging.getLogger(__name__)

DIALOGUE_EDIT_TYPES = ("emotion", "style", "speed")  # a line's instruction edits its clone; these keep the words
# Full-width forms a CJK keyboard types; the header is read as if they were the ASCII ones.
_FULL_WIDTH = str.maketrans({"［": "[", "］": "]", "【": "[", "】": "]", "｜": "|", "：": ":"})
_HEADER = re.compile(r"^\s*[\[［【]([^\[\]［］【】]*)[\]］】]")
_PAUSE = re.compile(r"^pause\s+(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?$", re.I)
_TAG = re.compile(r"[\[［【]([^\[\]［］【】]*)[\]］】]")
_SOUND_TAGS = {t.strip("[]").lower(): t for t in PARALINGUISTIC_TAGS}
_LANGUAGES = {name.lower(): name for name in LANGUAGE_TAGS} | {"mandarin": None, "english": None}


@dataclass(frozen=True)
class Instruction:
    """An edit applied to a line's cloned audio: one emotion, style or speed option."""

    edit_type: str
    option: str

    def __str__(self) -> str:
        return f"{self.edit_type}:{self.option}"


@dataclass(frozen=True)
class ScriptLine:
    """One spoken line. ``pause_before`` is None where the script sets no pause before it (the default applies)."""

    number: int  # 1-based line number in the script text, for messages
    speaker: str  # the voice's name as given (matched case-insensitively)
    text: str  # what is said, inline sound tags included
    instruction: Instruction | None = None
    language: str | None = None  # a LANGUAGE_TAGS name, or None for Mandarin and English
    pause_before: float | None = None

    @property
    def label(self) -> str:
        """The header the line would be written with, e.g. ``[Bob|emotion:happy]``."""
        extras = [x for x in (self.language, self.instruction and str(self.instruction)) if x]
        return "[" + "|".join([self.speaker, *extras]) + "]"


@dataclass(frozen=True)
class Script:
    lines: tuple[ScriptLine, ...]
    pause_after: float = 0.0  # silence after the last line (a pause written at the end of the script)


def _options() -> dict[str, list[str]]:
    """Normalised option name -> the edit types that have it."""
    table: dict[str, list[str]] = {}
    for name in DIALOGUE_EDIT_TYPES:
        for option in EDIT_TYPES[name].options:
            table.setdefault(_norm(option), []).append(name)
    return table


def _norm(word: str) -> str:
    return " ".join(word.lower().replace("_", " ").replace("-", " ").split())


def instruction_names() -> list[str]:
    """Every instruction a line may carry: each option (``type:option`` where two types share it), each language."""
    table = _options()
    names = []
    for name in DIALOGUE_EDIT_TYPES:
        for option in EDIT_TYPES[name].options:
            names.append(f"{name}:{option}" if len(table[_norm(option)]) > 1 else option)
    return names + list(LANGUAGE_TAGS)


def _instruction(word: str, where: str) -> Instruction | str | None:
    """An Instruction, a language name (str), or None for Mandarin/English."""
    raw = word.strip()
    key = _norm(raw)
    if key in _LANGUAGES:
        return _LANGUAGES[key]
    table = _options()
    if ":" in raw:
        kind, option = (_norm(p) for p in raw.split(":", 1))
        types = table.get(option, [])
        if kind not in DIALOGUE_EDIT_TYPES:
            raise InputError(
                f"{where}: '{raw}' names the edit type '{kind}'; a line's instruction is an "
                f"{', '.join(DIALOGUE_EDIT_TYPES[:-1])} or {DIALOGUE_EDIT_TYPES[-1]} option"
            )
        if kind not in types:
            raise InputError(
                f"{where}: '{option}' is not an option of {kind}; choose one of {', '.join(EDIT_TYPES[kind].options)}"
            )
        return Instruction(kind, _canonical(kind, option))
    types = table.get(key)
    if types is None:
        guess = difflib.get_close_matches(key, [*table, *_LANGUAGES], n=1)
        hint = f" Did you mean '{guess[0]}'?" if guess else ""
        raise InputError(
            f"{where}: unknown instruction '{raw}'.{hint} Write an emotion (happy, sad, ...), a style (whisper, "
            f"serious, ...), a speed (faster, slower, ...) or a language ({', '.join(LANGUAGE_TAGS)}); the "
            "StepAudio Dialogue help lists them all"
        )
    if len(types) > 1:
        raise InputError(
            f"{where}: '{raw}' is an option of {' and '.join(types)}; write which one, e.g. '{types[0]}:{raw}'"
        )
    return Instruction(types[0], _canonical(types[0], key))


def _canonical(kind: str, key: str) -> str:
    return next(o for o in EDIT_TYPES[kind].options if _norm(o) == key)


def _pause(inner: str) -> float | None:
    """Seconds of a ``pause S`` tag's inside, or None if it is not one."""
    m = _PAUSE.match(inner.strip())
    if m is None:
        return None
    return float(m.group(1)) / (1000.0 if (m.group(2) or "").lower() == "ms" else 1.0)


def _checked_pause(seconds: float, where: str) -> float:
    if seconds > MAX_PAUSE_SECONDS:
        raise InputError(
            f"{where}: a pause of {seconds:g} s is longer than {MAX_PAUSE_SECONDS:.0f} s; use a shorter "
            "one (or add the silence in an audio editor)"
        )
    return seconds


def _split_pauses(text: str, where: str) -> tuple[float | None, str, float | None]:
    """Leading and trailing ``[pause S]`` of a line's text, and the text between them."""
    before = after = None
    while (m := _TAG.match(text.lstrip())) and (p := _pause(m.group(1))) is not None:
        before = (before or 0.0) + _checked_pause(p, where)
        text = text.lstrip()[m.end() :]
    while True:
        tags = list(_TAG.finditer(text))
        last = tags[-1] if tags else None
        if last is None or text[last.end() :].strip() or (p := _pause(last.group(1))) is None:
            break
        after = (after or 0.0) + _checked_pause(p, where)
        text = text[: last.start()]
    for m in _TAG.finditer(text):
        if _pause(m.group(1)) is not None:
            raise InputError(
                f"{where}: [{m.group(1).strip()}] sits inside the line; a pause goes on its own line or "
                "at the start or end of a line (split the line in two to pause inside it)"
            )
    return before, text.strip(), after


def _check_words(text: str, speaker: str, where: str) -> None:
    if not text:
        raise InputError(
            f"{where}: [{speaker}] has nothing to say; write the words after the speaker, or delete the line"
        )
    words = _TAG.sub(" ", text)
    if not any(ch.isalnum() for ch in words):
        tags = " ".join(f"[{t}]" for t in _TAG.findall(text)) or text
        raise InputError(
            f"{where}: the line is only {tags}, with no words; the model makes sounds within speech, so write the "
            f"tag inside a sentence, e.g. [{speaker}] Oh [Laughter] that is funny."
        )
    for tag in _TAG.findall(text):
        if tag.strip().lower() not in _SOUND_TAGS and tag.strip().lower() not in _LANGUAGES:
            log.warning(
                "%s: [%s] is not one of the model's sound tags (%s); it may be read out or ignored",
                where,
                tag,
                " ".join(PARALINGUISTIC_TAGS),
            )


def _speaker_table(speakers: Iterable[str] | None) -> dict[str, str] | None:
    if speakers is None:
        return None
    table: dict[str, str] = {}
    for name in speakers:
        key = name.strip().lower()
        if key in table:
            raise InputError(f"two voices are named '{name.strip()}'; give each voice its own name")
        table[key] = name.strip()
    return table


def parse_script(
    script: str,
    speakers: Iterable[str] | None = None,
    *,
    how_to_add: Callable[[str], str] = lambda name: f"give {name} a voice",
) -> Script:
    """Parse ``script``. With ``speakers`` (the voices' names), every speaker must be one of them (in any case);
    ``how_to_add(name)`` ends the error for a speaker without a voice."""
    if not isinstance(script, str):
        raise InputError(f"the script must be text, not {type(script).__name__}")
    known = _speaker_table(speakers)
    lines: list[ScriptLine] = []
    pending: float | None = None  # explicit silence written since the last spoken line
    for number, raw in enumerate(script.splitlines(), start=1):
        where = f"script line {number}"
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(raw)
        if header is None:
            raise InputError(
                f"{where} has no speaker: start it with the speaker's name in brackets, e.g. "
                f"[Alice] {stripped[:30]}, or make it a comment with #"
            )
        inner = header.group(1).translate(_FULL_WIDTH)
        rest = raw[header.end() :]
        if (p := _pause(inner)) is not None:
            if rest.strip():
                raise InputError(
                    f"{where}: [{inner.strip()}] goes on its own line or after the speaker, e.g. "
                    f"[Alice] [{inner.strip()}] Hello; move the rest of the line to its own line"
                )
            pending = (pending or 0.0) + _checked_pause(p, where)
            continue
        name, *extras = (part.strip() for part in inner.split("|"))
        if not name:
            raise InputError(f"{where}: the brackets name no speaker; write e.g. [Alice] or [Alice|happy]")
        if name.lower() in _SOUND_TAGS:
            raise InputError(
                f"{where}: [{name}] is a sound tag, not a speaker; start the line with the speaker, "
                f"e.g. [Alice] [{name}] ..."
            )
        if known is not None:
            if name.lower() not in known:
                have = ", ".join(known.values()) or "none"
                raise InputError(
                    f"{where}: speaker '{name}' has no voice (voices: {have}); {how_to_add(name)}, or "
                    "use one of those names"
                )
            name = known[name.lower()]
        instruction, language = None, None
        for extra in extras:
            value = _instruction(extra, where)
            if isinstance(value, Instruction):
                if instruction is not None:
                    raise InputError(
                        f"{where}: one edit per line ({instruction} and {value}); keep one, or split the line"
                    )
                instruction = value
            elif value is not None:
                language = value
        before, text, after = _split_pauses(rest, where)
        _check_words(text, name, where)
        if before is not None:
            pending = (pending or 0.0) + before
        lines.append(ScriptLine(number, name, text, instruction, language, pending))
        pending = after
        if len(lines) > MAX_SCRIPT_LINES:
            raise InputError(f"the script has more than {MAX_SCRIPT_LINES} lines; split it into several scripts")
    if not lines:
        raise InputError(
            "the script has no lines to speak; write one line per utterance, e.g. "
            "'[Alice] Hello there!' then '[Bob|happy] Oh, hi!'"
        )
    return Script(tuple(lines), pending or 0.0)
