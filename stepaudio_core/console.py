"""Progress and warnings on the command line's stderr.

On a terminal one line is redrawn in place (carriage return, then clear to the end of the line);
in a log file or a pipe every report is a whole line, at most one every few seconds, so a log
reads "edit pass 2/3: 150/1001 tokens, 12 s" line by line instead of one run-together line.
Stages (a clone's pieces, an edit's passes) always get a line of their own.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .vocabulary import Vocabulary, render

CLEAR_LINE = "\r\x1b[K"


class Progress:
    """Token callback (``done``, ``total``) with stages: ``stage("pass", i, n)`` before each generation."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        every_seconds: float = 5.0,
        redraw_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label, self.clock = label, clock
        self.interval = redraw_seconds if self.tty else every_seconds
        self.start = clock()
        self.where = label  # "edit pass 2/3"
        self.last = (0, 0)  # the latest (done, total) seen
        self.shown_at = -float("inf")
        self.shown = True  # whether the latest count is on screen (or in the log)
        self.drawn = False  # a live line is on the terminal

    def stage(self, kind: str, index: int, count: int) -> None:
        """Generation ``index`` (from 0) of ``count`` starts: finish the previous one, name this one."""
        self._finish()
        if count > 1:  # "clone piece 1/1" would say nothing
            self.where = f"{self.label} {kind} {index + 1}/{count}"
            self.line(self.where)

    def piece(self, index: int, count: int) -> None:
        self.stage("piece", index, count)

    def pass_(self, index: int, count: int) -> None:
        self.stage("pass", index, count)

    def __call__(self, done: int, total: int) -> None:
        if done < self.last[0]:  # a new generation began without a stage: report the finished one
            self._finish()
        self.last, self.shown = (done, total), False
        now = self.clock()
        if now - self.shown_at >= self.interval or done >= total:
            self._show(now)

    def line(self, text: str, stream: TextIO | None = None) -> None:
        """A whole line (to ``stream``, default stderr) that the live line does not overwrite or join."""
        self._clear()
        print(text, file=stream or self.stream, flush=True)

    def close(self) -> None:
        self._finish()
        self._clear()

    def _text(self) -> str:
        done, total = self.last
        return f"{self.where}: {done}/{total} tokens, {self.clock() - self.start:.0f} s"

    def _show(self, now: float) -> None:
        self.shown_at, self.shown = now, True
        if self.tty:
            self.stream.write(CLEAR_LINE + self._text())
            self.stream.flush()
            self.drawn = True
        else:
            print(self._text(), file=self.stream, flush=True)

    def _finish(self) -> None:
        """Make sure the last count of the generation that just ended was reported."""
        if self.last[0] and not self.shown:
            self._show(self.clock())
        self.last = (0, 0)

    def _clear(self) -> None:
        if self.drawn:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.drawn = False


class WarningHandler(logging.Handler):
    """The core's warnings as "warning: ..." lines in the front end's vocabulary, each said once per run."""

    def __init__(self, vocabulary: Vocabulary, stream: TextIO | None = None):
        super().__init__(logging.WARNING)
        self.vocabulary, self.stream, self.seen = vocabulary, stream, set()

    def emit(self, record: logging.LogRecord) -> None:
        text = render(record.msg, self.vocabulary) if not record.args else record.getMessage()
        if text in self.seen:  # e.g. the same paralinguistic warning once per edit pass
            return
        self.seen.add(text)
        stream = self.stream or sys.stderr
        prefix = CLEAR_LINE if getattr(stream, "isatty", lambda: False)() else ""
        print(f"{prefix}warning: {text}", file=stream, flush=True)


def warn(text: str) -> None:
    """A warning of the command line itself, through the same handler as the core's."""
    logging.getLogger("stepaudio_core.cli").warning(text)


@contextlib.contextmanager
def warnings_to_stderr(vocabulary: Vocabulary):
    """While it lasts, the package's warnings go to stderr in ``vocabulary``'s words (the CLI's main)."""
    logger = logging.getLogger("stepaudio_core")
    handler = WarningHandler(vocabulary)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
