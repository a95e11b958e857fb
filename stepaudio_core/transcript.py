"""What speech recognition says about a recording: its text, and when each word is spoken.

Long edits cut recordings at pauses between words and dialogue writes subtitles, so the word
timings travel between stages as plain values, independent of the ASR model that made them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WordTiming:
    """One word (or one CJK character) and its start and end in seconds from the recording's start."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """A recording's text with word timings (empty when the model gave none) and the language spoken."""

    text: str
    words: tuple[WordTiming, ...] = ()
    language: str | None = None

    def timings_text(self) -> str:
        """One line per word, ``start-end word``, in seconds: readable in a text preview."""
        return "\n".join(f"{w.start:7.2f}-{w.end:7.2f}  {w.text}" for w in self.words)
