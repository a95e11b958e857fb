"""The error types the pack raises on purpose.

Everything a user can cause (a wrong file, odd audio, an unknown option) surfaces as a
``StepAudioError`` whose message says what is wrong and what to do. Nodes show that message
as it is; anything else escaping the core is a bug.
"""


class StepAudioError(Exception):
    """Base class of every error the pack raises deliberately."""


class ModelFileError(StepAudioError):
    """A model file is missing, truncated, a Git LFS pointer, or does not match the model."""


class InputError(StepAudioError):
    """An input (audio, text, tokens, an option) cannot be used as given."""


class NotEnoughMemoryError(InputError):
    """A run needed more memory than the device had. What it allocated is freed; the handle stays usable."""
