"""Where the model files live, and whether a folder holds them.

A model folder (``<ComfyUI>/models/step_audio_editx`` or any folder given on the command line)
holds the two released repositories side by side::

    Step-Audio-EditX/        config.json, model*.safetensors, tokenizer.model,
                             CosyVoice-300M-25Hz/{cosyvoice.yaml, flow.pt, hift.pt, campplus.onnx}
    Step-Audio-Tokenizer/    linguistic_tokenizer.npy, speech_tokenizer_v1.onnx, dengcunqin/.../model.pt, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError

LM_DIR = "Step-Audio-EditX"
TOKENIZER_DIR = "Step-Audio-Tokenizer"
DECODER_DIR = "CosyVoice-300M-25Hz"
DECODER_FILES = ("cosyvoice.yaml", "flow.pt", "hift.pt", "campplus.onnx")


@dataclass(frozen=True)
class Bundle:
    """Paths of one model folder. Nothing is read until a component is loaded."""

    root: Path

    @property
    def lm_dir(self) -> Path:
        return self.root / LM_DIR

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / TOKENIZER_DIR

    @property
    def decoder_dir(self) -> Path:
        return self.lm_dir / DECODER_DIR

    def require_decoder(self) -> Path:
        """The decoder folder, or an error that lists exactly which files are missing."""
        missing = [name for name in DECODER_FILES if not (self.decoder_dir / name).is_file()]
        if missing:
            raise ModelFileError(
                f"the decoder files {', '.join(missing)} are missing from {self.decoder_dir}. Download "
                f"stepfun-ai/Step-Audio-EditX into {self.lm_dir} (see README, 'Model files')."
            )
        return self.decoder_dir


def find_bundle(root: str | Path) -> Bundle:
    """Accept the models folder itself, or its ``Step-Audio-EditX`` subfolder by mistake."""
    root = Path(root).expanduser()
    if root.name == LM_DIR and not (root / LM_DIR).is_dir():
        root = root.parent
    if not (root / LM_DIR).is_dir():
        raise ModelFileError(
            f"no {LM_DIR}/ folder in {root}. Put the downloaded {LM_DIR} and {TOKENIZER_DIR} folders there "
            "(see README, 'Model files')."
        )
    return Bundle(root)
