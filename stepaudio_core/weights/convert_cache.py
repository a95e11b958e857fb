"""Weights converted from another format (ONNX graphs), kept as safetensors so the next load skips the work.

Reading an ONNX file means parsing the whole protobuf and walking its graph: about a second for
campplus.onnx and several for speech_tokenizer_v1.onnx, on every load. The converted state dict
is saved beside the source as ``<source name>.<converter>.safetensors`` (never a pickle) with the
source's size and mtime, the converter's name and any small metadata (the sizes read from the
graph) in the safetensors header. A cache file is used only when all of these still match the
source, so a replaced or edited model file is converted again, never served stale.

When the model folder is read-only, the cache goes to the user's cache folder instead (see
``user_cache_dir``), under a name that includes a hash of the source's full path; if that cannot
be written either, the conversion simply runs on every load. Writes go through a temporary file
and an atomic rename, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

log = logging.getLogger(__name__)

# Environment: a folder for the fallback cache, or "off" to disable caching altogether.
CACHE_ENV = "STEPAUDIO_CACHE_DIR"
_KEYS = ("source_size", "source_mtime_ns", "converter")

Conversion = tuple[dict[str, torch.Tensor], dict[str, str]]


def user_cache_dir() -> Path | None:
    """Where conversions go when the model folder is read-only; None when caching is off.

    ``$STEPAUDIO_CACHE_DIR`` if set, else the platform's per-user cache folder.
    """
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none") else Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stepaudio_editx"


def cache_paths(source: Path, converter: str) -> list[Path]:
    """Candidate cache files of ``source``, in the order they are read and written."""
    name = f"{source.name}.{converter}.safetensors"
    paths = [source.parent / name]
    fallback = user_cache_dir()
    if fallback is not None:
        where = hashlib.sha256(str(source.resolve()).encode("utf-8")).hexdigest()[:16]
        paths.append(fallback / f"{where}-{name}")
    return paths


def _key(source: Path, converter: str) -> dict[str, str]:
    st = source.stat()
    return {"source_size": str(st.st_size), "source_mtime_ns": str(st.st_mtime_ns), "converter": converter}


def _read(path: Path, key: dict[str, str]) -> Conversion | None:
    """The cached state dict and metadata at ``path`` if it exists and matches ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            if any(meta.get(k) != v for k, v in key.items()):
                return None
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        log.warning("ignoring unreadable conversion cache %s (%s); converting again", path, e)
        return None
    return state, {k: v for k, v in meta.items() if k not in _KEYS}


def _write(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> bool:
    """Save atomically; False (and nothing left behind) where the folder cannot be written."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
        return True
    except OSError as e:
        log.info("cannot cache a conversion at %s (%s)", path, e)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        return False


def cached_conversion(source: str | os.PathLike, converter: str, convert: Callable[[], Conversion]) -> Conversion:
    """``convert()`` of ``source`` (a state dict and str -> str metadata), from the cache when it is current.

    ``converter`` names the conversion and its version: change it when the conversion's output
    changes, and every cache written by the old code is ignored. The metadata keys of the cache
    key (``source_size``, ``source_mtime_ns``, ``converter``) are reserved.
    """
    source = Path(source)
    key = _key(source, converter)
    paths = cache_paths(source, converter)
    for path in paths:
        hit = _read(path, key)
        if hit is not None:
            return hit
    state, meta = convert()
    reserved = set(meta) & set(_KEYS)
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved for the cache key")
    if _key(source, converter) != key:
        return state, meta  # the source changed while it was read: do not label this result with either key
    for path in paths:
        if _write(path, state, {**meta, **key}):
            break
    return state, meta
