"""Turning the core's deliberate errors into messages that name the node."""

from __future__ import annotations

import contextlib

import torch

from ..stepaudio_core.errors import StepAudioError


class StepAudioNodeError(Exception):
    """What ComfyUI shows when one of our nodes cannot run: node name first, then what to do."""


class StepAudioOutOfMemoryError(StepAudioNodeError, torch.cuda.OutOfMemoryError):
    """A node ran out of memory. Being ComfyUI's OOM type too, it gets ComfyUI's own recovery: the
    executor unloads the loaded models, as it does when any node runs out of memory."""


@contextlib.contextmanager
def user_errors(node: str):
    try:
        yield
    except StepAudioError as e:
        # imported here, not at the top: the pack must load no model code when ComfyUI starts
        from ..stepaudio_core.errors import NotEnoughMemoryError

        kind = StepAudioOutOfMemoryError if isinstance(e, NotEnoughMemoryError) else StepAudioNodeError
        raise kind(f"{node}: {e}") from None
