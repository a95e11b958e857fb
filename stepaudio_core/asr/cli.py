"""The command line's use of speech recognition: find the Whisper folder, transcribe, say what was used."""

from __future__ import annotations

import sys
from pathlib import Path

from .folder import ASR_DIR, DEFAULT_ASR_MODEL


def asr_folder(models: Path, choice: str | None) -> Path:
    """``--asr-model``: an existing folder, else a name under MODELS/asr/ (default whisper-large-v3-turbo)."""
    if choice and Path(choice).is_dir():
        return Path(choice)
    return Path(models) / ASR_DIR / (choice or DEFAULT_ASR_MODEL)


def transcribe_for_cli(folder: Path, wav, sample_rate: int, device: str) -> str:
    from .recognizer import SpeechRecognizer

    print(f"transcribing --prompt-audio with {folder}", file=sys.stderr)
    text = SpeechRecognizer(folder, device=device).transcribe(wav, sample_rate, word_timings=False).text
    print(f"transcript: {text}")
    return text
