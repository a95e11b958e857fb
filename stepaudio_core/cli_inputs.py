"""The command line's inputs checked before any model loads: limits, flags that do not apply, the recording.

Every check reuses the facade's own (``validate``, ``edits``), so the CLI and the nodes accept
the same values; only the wording differs (``vocabulary.CLI`` names flags). None of this imports
torch, so a wrong flag fails in well under a second.
"""

from __future__ import annotations

import struct
from pathlib import Path

from . import budgets, limits, validate
from .console import warn
from .edits import EDIT_TYPES
from .errors import InputError
from .longform import split_text


def check_common(args) -> None:
    validate.check_seed(args.seed)
    if not args.models.is_dir():
        raise InputError(f"--models {args.models}: folder not found; give the folder holding Step-Audio-EditX/")


def check_clone(args, transcribing: bool = False) -> list[str]:
    """Checks a clone's flags; returns its pieces of text (the CLI prints the plan before it starts).

    ``transcribing``: speech recognition will supply the missing transcript.
    """
    check_common(args)
    if not transcribing:
        validate.text_input(
            args.prompt_text, "transcript", fix="give the transcript of the reference recording (or add --transcribe)"
        )
    text = validate.text_input(args.text, "text", fix="give what the cloned voice should say")
    validate.check_temperature(args.temperature)
    validate.check_max_seconds(args.max_seconds)
    return split_text(text)


def clone_plan(text: str, pieces: list[str], max_seconds: float | None = None) -> str | None:
    """The plan of a clone longer than one piece: "N pieces, about X of speech (at most Y)"; warns for very long text.

    "At most" is the sum of the pieces' generation bounds: what a model that never stops would produce.
    """
    if len(pieces) < 2:
        return None
    seconds = sum(budgets.speech_seconds(p) for p in pieces)
    bound = sum(budgets.clone_seconds(p, max_seconds) for p in pieces)
    if seconds > limits.LONG_TEXT_WARN_SECONDS:
        warn(
            f"--text ({len(text.strip())} characters) is about {_duration(seconds)} of speech in {len(pieces)} pieces; this runs "
            "for a long time, on a CPU many times the audio's length. Ctrl-C stops it."
        )
    return f"clone: {len(pieces)} pieces, about {_duration(seconds)} of speech (at most {_duration(bound)})"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def check_edit(args, transcribing: bool = False) -> None:
    """Checks an edit's flags; warns about flags that the chosen edit type ignores.

    ``transcribing``: speech recognition will supply the missing transcript.
    """
    check_common(args)
    validate.check_passes(args.n_iter)
    validate.check_piece_seconds(args.max_piece_seconds)
    # a transcript the ASR will write satisfies the edits that need one
    transcript = validate.text_input(args.prompt_text, "transcript") or ("(transcribed)" if transcribing else "")
    kind = EDIT_TYPES[args.edit_type]
    if args.edit_info not in (None, "") and not kind.options:
        warn(f"--edit-info '{args.edit_info}' does not apply to the {kind.name} edit (it has no options); ignored")
        args.edit_info = None
    if args.text is not None and not kind.needs_new_text:
        warn(f"--text applies only to the paralinguistic edit, not to {kind.name}; ignored")
        args.text = None
    validate.check_edit_request(kind.name, args.edit_info, transcript, args.text)


def check_dialogue(args) -> None:
    """A dialogue's numeric flags; the script and the voices are checked as they are read."""
    check_common(args)
    validate.check_temperature(args.temperature)
    validate.check_flow_steps(args.flow_steps)
    validate.check_max_seconds(args.max_seconds)
    validate.check_pause(args.pause)


def read_recording(path: Path, flag: str = "--prompt-audio"):
    """(samples as float32 numpy (channels, samples), rate); a missing or damaged file is one clear line."""
    import soundfile as sf

    if not path.exists():
        raise InputError(f"{flag}: file not found: {path}")
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give an audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for unreadable files
        raise InputError(f"{flag}: cannot read {path} as audio ({e}); give a WAV, FLAC, OGG or MP3 file") from None
    short = wav_shortfall(path)
    if short is not None:
        claimed, present = short
        warn(
            f"{flag} {path} is cut short: its header says {claimed} bytes of audio but the file holds {present} "
            f"({present / max(claimed, 1):.0%}); using the {data.shape[0] / rate:.2f} s present. Re-export or copy the "
            "file again if audio is missing."
        )
    return data.T.copy(), int(rate)


def wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes of audio a WAV's header promises, bytes the file holds) when it holds fewer; else None.

    libsndfile reads a truncated WAV up to its end without a word. Streamed WAVs write a data size
    of 0 or 0xFFFFFFFF ("unknown"); those are not truncated, only unsized.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            if f.read(12)[:4] != b"RIFF":
                return None
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk == b"data":
                    present = size - f.tell()
                    if length in (0, 0xFFFFFFFF) or present >= length:
                        return None
                    return length, present
                f.seek(length + (length & 1), 1)  # chunks are padded to even sizes
    except OSError:
        return None
