"""Turning the core's deliberate errors into messages that name the node."""

from __future__ import annotations

import contextlib

from ..stepaudio_core.errors import StepAudioError


class StepAudioNodeError(Exception):
    """What ComfyUI shows when one of our nodes cannot run: node name first, then what to do."""


@contextlib.contextmanager
def user_errors(node: str):
    try:
        yield
    except StepAudioError as e:
        raise StepAudioNodeError(f"{node}: {e}") from None
