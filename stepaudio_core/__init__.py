"""Step-Audio-EditX in plain PyTorch: audio tokenizer, Step1 audio LM and flow-matching decoder.

This package never imports ComfyUI; the node adapters live in the pack's ``nodes/`` package.
Submodules are imported on use so that ``import stepaudio_core`` stays cheap.
"""

from .errors import InputError, ModelFileError, StepAudioError

__all__ = ["InputError", "ModelFileError", "StepAudioError"]
__version__ = "0.1.0"
