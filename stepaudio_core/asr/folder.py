"""Where Whisper models live, what a usable folder holds, and the opt-in download.

A folder is any Whisper checkpoint saved by transformers (``save_pretrained``), as the Hub's
``openai/whisper-*`` repositories are. Everything is checked before transformers sees it, so a
missing or broken file is reported by name instead of as a transformers stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..download import lfs_pointers
from ..errors import ModelFileError

ASR_DIR = "asr"  # under the step_audio_editx models folder: models/step_audio_editx/asr/<name>/
# large-v3 is what the reference's app uses; turbo is the same encoder with 4 decoder layers instead of 32.
KNOWN_ASR_MODELS = {
    "whisper-large-v3-turbo": "openai/whisper-large-v3-turbo",
    "whisper-large-v3": "openai/whisper-large-v3",
}
DEFAULT_ASR_MODEL = "whisper-large-v3-turbo"
# The Hub repositories also hold Flax, TF and pickle copies of the weights; transformers needs only these.
DOWNLOAD_PATTERNS = ["*.json", "*.txt", "model*.safetensors"]
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_TOKENIZER = (("tokenizer.json",), ("vocab.json", "merges.txt"))


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path} is not readable JSON ({e}); download the ASR model again") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path} does not hold a JSON object; download the ASR model again")
    return value


def check_asr_folder(folder: str | Path) -> Path:
    """The folder, if it holds a complete Whisper checkpoint; otherwise an error naming what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(
            f"ASR model folder {folder} does not exist: put a Whisper checkpoint in transformers format there "
            f"(for example {KNOWN_ASR_MODELS[DEFAULT_ASR_MODEL]}), or turn on the ASR download"
        )
    for name in ("config.json", "generation_config.json", "preprocessor_config.json"):
        if not (folder / name).is_file():
            raise ModelFileError(f"ASR model folder {folder} lacks {name}; download the ASR model again")
    pointers = lfs_pointers(folder)
    if pointers:
        raise ModelFileError(f"{pointers[0]} is a Git LFS pointer, not its content; delete it and download again")
    config = _json(folder / "config.json")
    if config.get("model_type") != "whisper":
        raise ModelFileError(
            f"{folder / 'config.json'} describes a {config.get('model_type')!r} model, not Whisper; choose a Whisper folder"
        )
    generation = _json(folder / "generation_config.json")
    if "lang_to_id" not in generation or "no_timestamps_token_id" not in generation:
        raise ModelFileError(
            f"{folder / 'generation_config.json'} lacks lang_to_id/no_timestamps_token_id (not a multilingual "
            "Whisper generation config); download the ASR model again"
        )
    _json(folder / "preprocessor_config.json")
    if not any(all((folder / f).is_file() for f in names) for names in _TOKENIZER):
        raise ModelFileError(
            f"ASR model folder {folder} lacks its tokenizer (tokenizer.json, or vocab.json and merges.txt)"
        )
    if not any((folder / f).is_file() for f in _WEIGHTS):
        raise ModelFileError(
            f"ASR model folder {folder} lacks its weights (model.safetensors); download the ASR model again"
        )
    return folder


def download_asr_model(name: str, folder: str | Path, progress: Callable[[str], None] | None = None) -> Path:
    """Download (or complete) one of KNOWN_ASR_MODELS into ``folder``; resumes what was interrupted."""
    if name not in KNOWN_ASR_MODELS:
        raise ModelFileError(
            f"no download is known for ASR model {name!r}; choose one of {', '.join(KNOWN_ASR_MODELS)}"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelFileError("downloading needs the huggingface-hub package: pip install huggingface-hub") from None
    repo = KNOWN_ASR_MODELS[name]
    if progress is not None:
        progress(f"downloading {repo} into {folder}")
    try:
        snapshot_download(repo_id=repo, local_dir=str(folder), allow_patterns=DOWNLOAD_PATTERNS)
    except Exception as e:  # network, auth and disk errors all end the same way for the user
        raise ModelFileError(
            f"downloading {repo} into {folder} failed ({type(e).__name__}: {e}). Check the network connection and "
            "free disk space, then run again: finished files are kept and the rest resumes."
        ) from None
    return check_asr_folder(folder)
