"""Token-level progress and cancel, the way ComfyUI expects them."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils


class TokenProgress:
    """A per-token callback for the core's generation loop.

    It moves the node's progress bar and, when the user presses Cancel, raises ComfyUI's own
    interrupt exception from inside the decode loop, so generation stops within one token.
    ``passes`` spreads several generations (iterations, long-form pieces) over one bar; within a
    pass, a long edit's pieces (``start_piece``) share the pass's part of it.
    """

    def __init__(self, passes: int = 1, steps: int = 1000):
        # Without a node id the bar reports for the node that is executing.
        self.bar = comfy.utils.ProgressBar(steps * passes)
        self.steps, self.passes, self.current = steps, passes, 0
        self.piece, self.pieces = 0, 1

    def start_pass(self, index: int) -> None:
        self.current, self.piece = index, 0
        mm.throw_exception_if_processing_interrupted()
        self.bar.update_absolute(index * self.steps, self.steps * self.passes)

    def start_piece(self, index: int, count: int) -> None:
        self.piece, self.pieces = index, max(1, count)
        self(0, 1)

    def __call__(self, done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        frac = (self.piece + min(1.0, done / max(1, total))) / self.pieces
        self.bar.update_absolute(int((self.current + frac) * self.steps), self.steps * self.passes)
