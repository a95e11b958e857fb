"""Dialogue: a script of lines, each naming its speaker, spoken by several cloned voices into one scene."""

from .cache import LineCache
from .render import Dialogue, RenderedLine, line_seed, render_dialogue, voice_key
from .script import DIALOGUE_EDIT_TYPES, Instruction, Script, ScriptLine, instruction_names, parse_script

__all__ = [
    "DIALOGUE_EDIT_TYPES",
    "Dialogue",
    "Instruction",
    "LineCache",
    "RenderedLine",
    "Script",
    "ScriptLine",
    "instruction_names",
    "line_seed",
    "parse_script",
    "render_dialogue",
    "voice_key",
]
