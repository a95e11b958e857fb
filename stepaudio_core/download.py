"""Fetching the released model files from the Hugging Face Hub - only when the user asks.

``huggingface_hub.snapshot_download`` resumes interrupted downloads and skips files that are
already complete. Afterwards every file is checked: a Git LFS pointer in place of the weights
(what a clone without git-lfs leaves behind) is reported by name instead of failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .bundle import LM_DIR, TOKENIZER_DIR
from .errors import ModelFileError

REPOS = {LM_DIR: "stepfun-ai/Step-Audio-EditX", TOKENIZER_DIR: "stepfun-ai/Step-Audio-Tokenizer"}
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


def download_models(root: str | Path, progress: Callable[[str], None] | None = None) -> Path:
    """Download (or complete) both repositories into ``root``/Step-Audio-EditX and ``root``/Step-Audio-Tokenizer."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelFileError("downloading needs the huggingface-hub package: pip install huggingface-hub") from None
    root = Path(root)
    for folder, repo in REPOS.items():
        if progress is not None:
            progress(f"downloading {repo} into {root / folder}")
        try:
            snapshot_download(repo_id=repo, local_dir=str(root / folder))
        except Exception as e:  # network, auth and disk errors all end the same way for the user
            raise ModelFileError(
                f"downloading {repo} into {root / folder} failed ({type(e).__name__}: {e}). Check the network "
                "connection and free disk space, then run again: finished files are kept and the rest resumes."
            ) from None
        pointers = lfs_pointers(root / folder)
        if pointers:
            raise ModelFileError(
                f"{len(pointers)} file(s) in {root / folder} are Git LFS pointers, not content (first: {pointers[0]}). "
                "Delete them and download again."
            )
    return root
