"""How much audio one generation may produce: the bounds that stop a generation that never ends.

A trained model stops on its own long before these; a broken or random one runs to the bound,
so the bound decides how long a bad run takes. Tests and tools read these functions instead of
copying the formulas.
"""

from __future__ import annotations

from .limits import SPOKEN_UNITS_PER_SECOND, WINDOW_SECONDS
from .longform import spoken_units


def clone_seconds(piece: str, max_seconds: float | None = None) -> float:
    """Bound for speaking one piece of text: the user's ``max_seconds``, else generous from its spoken length."""
    if max_seconds:
        return max_seconds
    return min(90.0, 3.0 + spoken_units(piece) / 6.0)  # ~6 units per second is slow speech


def speech_seconds(text: str) -> float:
    """About how long ``text`` takes to say: the CLI's estimate before a long clone starts."""
    return spoken_units(text) / SPOKEN_UNITS_PER_SECOND


def edit_seconds(recording_seconds: float) -> float:
    """Bound for one edit pass of a recording.

    Edits keep roughly the input's length; a slower speed can double it. The model edits at
    most its 30 s window, so an output longer than that could not be edited again: within the
    window, leave room for a slower speed edit.
    """
    return min(WINDOW_SECONDS, 2.5 * recording_seconds + 5.0)
