"""The error types the pack raises on purpose.

Everything a user can cause (a wrong file, odd audio, an unknown option) surfaces as a
``StepAudioError`` whose message says what is wrong and what to do. Nodes show that message
as it is; anything else escaping the core is a bug. An ``InputError`` may carry a ``Message``
(vocabulary.py) so the CLI can name its flags where the nodes name their inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vocabulary import Message, Vocabulary


class StepAudioError(Exception):
    """Base class of every error the pack raises deliberately."""


class ModelFileError(StepAudioError):
    """A model file is missing, truncated, a Git LFS pointer, or does not match the model."""


class InputError(StepAudioError):
    """An input (audio, text, tokens, an option) cannot be used as given.

    ``message`` is plain text or a function of a ``Vocabulary``; ``str()`` is the nodes' wording.
    """

    def __init__(self, message: str | Message | Callable[[Vocabulary], str]):
        from .vocabulary import Message  # here, not at the top: ComfyUI start-up imports errors and no more

        self.message = message if isinstance(message, (str, Message)) else Message(message)
        super().__init__(str(self.message))


class NotEnoughMemoryError(InputError):
    """A run needed more memory than the device had. What it allocated is freed; the handle stays usable."""
