"""Where the model files live, and whether a folder holds them.

A model folder (``<ComfyUI>/models/step_audio_editx`` or any folder given on the command line)
holds the two released repositories side by side::

    Step-Audio-EditX/        config.json, model*.safetensors, tokenizer.model,
                             CosyVoice-300M-25Hz/{cosyvoice.yaml, flow.pt, hift.pt, campplus.onnx}
    Step-Audio-Tokenizer/    linguistic_tokenizer.npy, speech_tokenizer_v1.onnx, dengcunqin/.../model.pt, ...

and may hold ``Step-Audio-EditX-AWQ-4bit/`` (the 4-bit release) beside or instead of Step-Audio-EditX.
A bundle uses one of the two LM folders: the models folder itself means Step-Audio-EditX (or the AWQ
folder if it is the only one); naming the AWQ folder picks it. Files the AWQ folder may lack (the
decoder's CosyVoice-300M-25Hz/, tokenizer.model) are taken from Step-Audio-EditX/ beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError

LM_DIR = "Step-Audio-EditX"
AWQ_DIR = "Step-Audio-EditX-AWQ-4bit"
LM_DIRS = (LM_DIR, AWQ_DIR)
TOKENIZER_DIR = "Step-Audio-Tokenizer"
DECODER_DIR = "CosyVoice-300M-25Hz"
DECODER_FILES = ("cosyvoice.yaml", "flow.pt", "hift.pt", "campplus.onnx")


@dataclass(frozen=True)
class Bundle:
    """Paths of one model folder. Nothing is read until a component is loaded."""

    root: Path
    lm_name: str = LM_DIR  # which LM folder: Step-Audio-EditX or Step-Audio-EditX-AWQ-4bit

    @property
    def lm_dir(self) -> Path:
        return self.root / self.lm_name

    def _lm_file(self, relative: str) -> Path:
        """``relative`` in the LM folder, or in the full-precision folder beside it if only that one has it."""
        own, full = self.lm_dir / relative, self.root / LM_DIR / relative
        return full if self.lm_name != LM_DIR and not own.exists() and full.exists() else own

    @property
    def text_tokenizer_file(self) -> Path:
        return self._lm_file("tokenizer.model")

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / TOKENIZER_DIR

    @property
    def decoder_dir(self) -> Path:
        return self._lm_file(DECODER_DIR)

    def require_decoder(self) -> Path:
        """The decoder folder, or an error that lists exactly which files are missing."""
        missing = [name for name in DECODER_FILES if not (self.decoder_dir / name).is_file()]
        if missing and self.lm_name != LM_DIR:
            raise ModelFileError(
                f"the decoder files {', '.join(missing)} are missing: {self.lm_name} does not carry them and "
                f"{self.root / LM_DIR / DECODER_DIR} has none. Download the {DECODER_DIR} folder of "
                f"stepfun-ai/Step-Audio-EditX into {self.root / LM_DIR} (the Loader's download option does)."
            )
        if missing:
            raise ModelFileError(
                f"the decoder files {', '.join(missing)} are missing from {self.decoder_dir}. Download "
                f"stepfun-ai/Step-Audio-EditX into {self.lm_dir} (see README, 'Model files')."
            )
        return self.decoder_dir


def find_bundle(root: str | Path) -> Bundle:
    """Accept the models folder itself, or one of its LM folders (Step-Audio-EditX or the AWQ one)."""
    root = Path(root).expanduser()
    if root.name in LM_DIRS and not (root / root.name).is_dir():
        return Bundle(root.parent, root.name)
    if (root / LM_DIR).is_dir() and not full_lm_is_borrowed(root):
        return Bundle(root, LM_DIR)
    if (root / AWQ_DIR).is_dir():
        return Bundle(root, AWQ_DIR)
    raise ModelFileError(
        f"no {LM_DIR}/ folder in {root}. Put the downloaded {LM_DIR} (or {AWQ_DIR}) and {TOKENIZER_DIR} folders "
        "there (see README, 'Model files')."
    )


def full_lm_is_borrowed(root: Path) -> bool:
    """True where Step-Audio-EditX/ holds only what the AWQ folder borrows (no LM config): not a model by itself."""
    return (root / AWQ_DIR).is_dir() and not (root / LM_DIR / "config.json").is_file()
