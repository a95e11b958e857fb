"""One message source, two vocabularies: how the nodes and the command line name the same inputs.

The core's messages name an input by its canonical name (the node input's name: ``audio``,
``transcript``, ``new_text``). A ``Message`` is a sentence written as a function of a
``Vocabulary``, so each front end shows it in its own words: the nodes say "input 'new_text'"
and "write it in the Encode transcript", the CLI says "--text" and "give it with --prompt-text".
``str()`` of a message is the nodes' wording, so ComfyUI and plain Python see what they always saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Vocabulary:
    pattern: str  # how a sentence names an input, "{}" filled with the front end's name of it
    names: Mapping[str, str] = field(default_factory=dict)  # canonical -> this front end's name, where they differ
    phrases: Mapping[str, str] = field(default_factory=dict)  # remedies and words that differ between front ends

    def input(self, name: str) -> str:
        return self.pattern.format(self.names.get(name, name))

    def phrase(self, key: str) -> str:
        return self.phrases[key]


NODES = Vocabulary(
    "input '{}'",
    phrases={
        "give transcript": "write it in the Encode transcript",
        "give speech": "connect a recording of speech",
        "give speaker": "connect a recording of someone speaking",
        "bad samples": "the node that produced it failed. Fix or replace that audio (e.g. re-export it)",
        "an option": "an option",
        "option: ": "",
    },
)

CLI = Vocabulary(
    "{}",
    names={
        "audio": "--prompt-audio",
        "prompt": "--prompt-audio",
        "transcript": "--prompt-text",
        "text": "--text",
        "new_text": "--text",
        "seed": "--seed",
        "temperature": "--temperature",
        "max_seconds": "--max-seconds",
        "iterations": "--n-iter",
        "edit_type": "--edit-type",
        "option": "--edit-info",
        "language": "--language",
        "out": "--out",
        "pause": "--pause",
        "flow_steps": "--flow-steps",
    },
    phrases={
        "give transcript": "give it with --prompt-text",
        "give speech": "give a recording of speech",
        "give speaker": "give a recording of someone speaking",
        "bad samples": "the file is damaged. Re-export it from the program that made it",
        "an option": "--edit-info",
        "option: ": "--edit-info: ",
    },
)


class Message:
    """A sentence that names inputs, rendered in the vocabulary of whoever shows it."""

    def __init__(self, compose: Callable[[Vocabulary], str]):
        self.compose = compose

    def render(self, vocabulary: Vocabulary) -> str:
        return self.compose(vocabulary)

    def __str__(self) -> str:
        return self.compose(NODES)


def render(message: object, vocabulary: Vocabulary) -> str:
    """``message`` (a Message, an error carrying one, or anything else) in ``vocabulary``'s words."""
    if isinstance(message, Message):
        return message.render(vocabulary)
    inner = getattr(message, "message", None)
    if isinstance(inner, Message):
        return inner.render(vocabulary)
    return str(message)
