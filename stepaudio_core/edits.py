"""The one registry of edit types, options and tags (reference: config/edit_config.py, README).

Plain data with no heavy imports, so the ComfyUI nodes can build their option lists at start-up
and the web extension can read it; the LM's prompt builder reads the same table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class EditType:
    name: str
    options: tuple[str, ...]  # empty: the type takes no option
    needs_audio_text: bool  # the transcript of the audio being edited goes into the instruction
    needs_new_text: bool  # paralinguistic: the new text with its inline tags


EDIT_TYPES: dict[str, EditType] = {
    t.name: t
    for t in (
        EditType(
            "emotion",
            ("happy", "angry", "sad", "humour", "confusion", "disgusted", "empathy", "embarrass", "fear",
             "surprised", "excited", "depressed", "coldness", "admiration", "remove"),
            True, False,
        ),
        EditType(
            "style",
            ("serious", "arrogant", "child", "older", "girl", "pure", "sister", "sweet", "ethereal", "whisper",
             "gentle", "recite", "generous", "act_coy", "warm", "shy", "comfort", "authority", "chat", "radio",
             "soulful", "story", "vivid", "program", "news", "advertising", "roar", "murmur", "shout", "deeply",
             "loudly", "remove", "exaggerated"),
            True, False,
        ),
        EditType("vad", (), False, False),
        EditType("denoise", (), False, False),
        EditType("paralinguistic", (), True, True),
        EditType("speed", ("faster", "slower", "more faster", "more slower"), True, False),
    )
}
PARALINGUISTIC_TAGS = (
    "[Breathing]", "[Laughter]", "[Surprise-oh]", "[Confirmation-en]", "[Uhm]", "[Surprise-ah]", "[Surprise-wa]",
    "[Sigh]", "[Question-ei]", "[Dissatisfaction-hnn]",
)
LANGUAGE_TAGS = ("Sichuanese", "Cantonese", "Japanese", "Korean")  # Mandarin and English are untagged
NO_OPTION = "none"


def all_options() -> list[str]:
    """Every option of every type, for a single combo widget (the front end filters it by type)."""
    seen: list[str] = []
    for t in EDIT_TYPES.values():
        seen += [o for o in t.options if o not in seen]
    return seen + [NO_OPTION]


def check_edit(edit_type: str, option: str | None) -> tuple[EditType, str | None]:
    """Validate a type/option pair; returns the type and the option (None for types without one)."""
    if edit_type not in EDIT_TYPES:
        raise InputError(f"unknown edit type '{edit_type}'; choose one of {', '.join(EDIT_TYPES)}")
    t = EDIT_TYPES[edit_type]
    if not t.options:
        return t, None
    choices = ", ".join(t.options)
    if option in (None, "", NO_OPTION):
        raise InputError(lambda v: f"edit type '{edit_type}' needs {v.phrase('an option')}: one of {choices}")
    if option not in t.options:
        raise InputError(
            lambda v: f"{v.phrase('option: ')}'{option}' is not an option of edit type '{edit_type}'; choose one of {choices}"
        )
    return t, option


def registry() -> dict:
    """Edit types, options and tags as plain JSON-ready data, for the nodes and the front end."""
    return {
        "edit_types": {
            t.name: {"options": list(t.options), "needs_audio_text": t.needs_audio_text, "needs_new_text": t.needs_new_text}
            for t in EDIT_TYPES.values()
        },
        "paralinguistic_tags": list(PARALINGUISTIC_TAGS),
        "language_tags": list(LANGUAGE_TAGS),
    }


def registry_js() -> str:
    """The registry as an ES module for the web extension (web/js/edit_registry.js), so the table lives here only."""
    return (
        "// Generated from stepaudio_core/edits.py by `python -m stepaudio_core.edits --write-js "
        "web/js/edit_registry.js`. Do not edit.\n"
        f"export const NO_OPTION = {json.dumps(NO_OPTION)};\n"
        f"export const REGISTRY = {json.dumps(registry(), indent=2)};\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stepaudio_core.edits", description=__doc__.splitlines()[0])
    parser.add_argument("--write-js", metavar="PATH", required=True, help="write the registry as an ES module")
    args = parser.parse_args(argv)
    Path(args.write_js).write_text(registry_js(), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main()
