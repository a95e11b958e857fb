"""Where the command line writes: the output path checked before any model loads, files written whole.

A CPU edit takes minutes, so a bad ``--out`` (a folder, no or an unknown extension, a folder we
cannot write) must fail before the work, not after it. Every file is written under a temporary
name in its own folder and renamed into place, so a reader never sees half a file and an
interrupted run leaves only whole files. A lock file beside the output keeps two runs with the
same ``--out`` from mixing their passes: the second one stops before it loads a model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError

# extension -> libsndfile format; soundfile would guess the same, but the temporary name has no
# audio extension, so the format is passed explicitly
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF"}
FORMAT_HELP = ".wav (16-bit PCM), .flac, .ogg (Vorbis), .mp3, .aiff"


def supported_formats() -> dict[str, str]:
    """The extensions this machine's libsndfile can write (MP3 needs libsndfile 1.1 or later)."""
    import soundfile as sf

    available = sf.available_formats()
    return {ext: fmt for ext, fmt in FORMATS.items() if fmt in available}


def iteration_paths(out: Path, n: int) -> list[Path]:
    """The files of an n-pass edit: OUT itself for one pass, else OUT_iter1 ... OUT_iterN (same extension)."""
    return [out] if n == 1 else [out.with_name(f"{out.stem}_iter{i}{out.suffix}") for i in range(1, n + 1)]


def _existing_folder(folder: Path) -> Path:
    while not folder.exists():
        folder = folder.parent
    return folder


def check_output(out: Path, inputs: tuple[Path, ...] = (), flag: str = "--out") -> Path:
    """``out`` as an absolute path whose format is known and whose folder we can write; InputError if not."""
    out = Path(out).expanduser().absolute()
    if out.is_dir():
        raise InputError(f"{flag} {out} is a folder; give a file name in it, such as {out / 'out.wav'}")
    formats = supported_formats()
    ext = out.suffix.lower()
    if ext not in formats:
        what = f"has the unknown extension '{out.suffix}'" if out.suffix else "has no extension"
        raise InputError(
            f"{flag} {out} {what}; the format follows the extension: {', '.join(formats)} (e.g. {out.stem}.wav)"
        )
    for path in inputs:
        if path.exists() and out.exists() and os.path.samefile(path, out):
            raise InputError(f"{flag} {out} is the input recording itself; write the result to another file")
    return check_folder(out, flag)


def check_folder(out: Path, flag: str) -> Path:
    """``out`` as an absolute path in a folder that exists or can be made, and that this process can write."""
    out = Path(out).expanduser().absolute()
    folder = _existing_folder(out.parent)
    if not folder.is_dir():
        raise InputError(f"{flag} {out}: {folder} is a file, not a folder; choose another output path")
    try:  # a real probe: permission bits say nothing for root, read-only mounts or full quotas
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".stepaudio-probe-"):
            pass
    except OSError as e:
        raise InputError(
            f"{flag} {out}: cannot write in {folder} ({e.strerror}); choose a folder you can write to"
        ) from None
    return out


def write_audio(path: Path, wav, sample_rate: int) -> None:
    """Write a mono waveform (torch or numpy) to ``path`` through a temporary file and an atomic rename."""
    import soundfile as sf

    data = wav.numpy() if hasattr(wav, "numpy") else wav
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            sf.write(f, data, sample_rate, format=FORMATS[path.suffix.lower()])
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a result gets the usual permissions
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text (subtitles) the same way: a temporary file, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe liveness probe: os.kill(pid, 0) ends the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Held while a run writes ``out`` (and its _iterN files): a second run with the same --out stops early."""

    def __init__(self, out: Path, flag: str = "--out"):
        self.path = out.with_name(f".{out.name}.lock")
        self.out, self.flag = out, flag

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = self._owner()
                if pid is not None and not _alive(pid):
                    self.path.unlink(missing_ok=True)  # left by a run that was killed: take it over
                    continue
                who = "another run" if pid is None else f"another run (process {pid})"
                raise InputError(
                    f"{self.flag} {self.out}: {who} is writing it; wait for it to finish or "
                    f"choose another {self.flag} (if no run is going, delete {self.path})"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise InputError(f"{self.flag} {self.out}: cannot take the lock {self.path}; delete it and run again")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
