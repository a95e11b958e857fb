"""Fetching the released model files from the Hugging Face Hub - only when the user asks.

``huggingface_hub.snapshot_download`` resumes interrupted downloads and skips files that are
already complete. Afterwards every file is checked: a Git LFS pointer in place of the weights
(what a clone without git-lfs leaves behind) is reported by name instead of failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .bundle import AWQ_DIR, DECODER_DIR, DECODER_FILES, LM_DIR, TOKENIZER_DIR
from .errors import ModelFileError

REPOS = {LM_DIR: "stepfun-ai/Step-Audio-EditX", TOKENIZER_DIR: "stepfun-ai/Step-Audio-Tokenizer"}
AWQ_REPO = "stepfun-ai/Step-Audio-EditX-AWQ-4bit"
# What the AWQ folder needs from the full release if it lacks them: the decoder and the text tokenizer
# (small files; the full-precision weights are never fetched for it).
FULL_EXTRAS = (f"{DECODER_DIR}/*", "tokenizer.model", "tokenizer_config.json")
_LFS_MAGIC = b"version https://git-lfs.github.com/spec"


def lfs_pointers(folder: Path) -> list[Path]:
    """Files under ``folder`` that are Git LFS pointers rather than content."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size < 1024 and ".cache" not in path.parts:
            with open(path, "rb") as f:
                if f.read(len(_LFS_MAGIC)) == _LFS_MAGIC:
                    found.append(path)
    return found


def download_models(root: str | Path, progress: Callable[[str], None] | None = None, awq: bool = False) -> Path:
    """Download (or complete) both repositories into ``root``/Step-Audio-EditX and ``root``/Step-Audio-Tokenizer.

    ``awq``: the 4-bit release into ``root``/Step-Audio-EditX-AWQ-4bit instead of the full LM, plus, if
    it does not carry them, the decoder and tokenizer files of the full release (not its weights).
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelFileError("downloading needs the huggingface-hub package: pip install huggingface-hub") from None
    root = Path(root)
    if awq:
        _fetch(snapshot_download, AWQ_REPO, root / AWQ_DIR, None, progress)
        if not _has_decoder_and_tokenizer(root / AWQ_DIR) and not _has_decoder_and_tokenizer(root / LM_DIR):
            _fetch(snapshot_download, REPOS[LM_DIR], root / LM_DIR, FULL_EXTRAS, progress)
    else:
        _fetch(snapshot_download, REPOS[LM_DIR], root / LM_DIR, None, progress)
    _fetch(snapshot_download, REPOS[TOKENIZER_DIR], root / TOKENIZER_DIR, None, progress)
    return root


def _has_decoder_and_tokenizer(folder: Path) -> bool:
    files = [folder / DECODER_DIR / name for name in DECODER_FILES] + [folder / "tokenizer.model"]
    return all(f.is_file() for f in files)


def _fetch(snapshot_download, repo: str, folder: Path, patterns, progress) -> None:
    """One repository (or the files matching ``patterns``) into ``folder``, then the LFS pointer check."""
    if progress is not None:
        what = f"{', '.join(patterns)} of {repo}" if patterns else repo
        progress(f"downloading {what} into {folder}")
    kwargs = {"allow_patterns": list(patterns)} if patterns else {}
    try:
        snapshot_download(repo_id=repo, local_dir=str(folder), **kwargs)
    except Exception as e:  # network, auth and disk errors all end the same way for the user
        raise ModelFileError(
            f"downloading {repo} into {folder} failed ({type(e).__name__}: {e}). Check the network "
            "connection and free disk space, then run again: finished files are kept and the rest resumes."
        ) from None
    pointers = lfs_pointers(folder)
    if pointers:
        raise ModelFileError(
            f"{len(pointers)} file(s) in {folder} are Git LFS pointers, not content (first: {pointers[0]}). "
            "Delete them and download again."
        )
