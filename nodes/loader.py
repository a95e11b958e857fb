"""StepAudio Model Loader: a model folder, a device and a dtype -> one cached model handle."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..stepaudio_core import limits
from .errors import user_errors
from .types import CATEGORY, StepAudioModel

FOLDER = "step_audio_editx"
NOT_FOUND = "(no Step-Audio-EditX folder found: turn on download, or see the README)"
AWQ_DIR = "Step-Audio-EditX-AWQ-4bit"
AWQ_OFFER = f"({AWQ_DIR}, 4-bit for small GPUs: turn on download to fetch it)"
log = logging.getLogger(__name__)

# The pack's one piece of global state: model handles by configuration, so every node and every
# queued prompt that asks for the same model shares its loaded weights.
_HANDLES: dict[tuple, object] = {}
_HANDLES_LOCK = threading.Lock()


def register_model_folder() -> None:
    """Make ``models/step_audio_editx`` known to ComfyUI, so extra_model_paths.yaml can add more."""
    folder_paths.add_model_folder_path(FOLDER, str(Path(folder_paths.models_dir) / FOLDER))


def _label(path: str) -> str:
    """Folders under ComfyUI's models directory are listed as 'models/...', so a saved workflow
    names the same folder on every machine; others by their full path."""
    try:
        return "models/" + Path(path).resolve().relative_to(Path(folder_paths.models_dir).resolve()).as_posix()
    except ValueError:
        return path


def resolve_folder(label: str) -> str:
    """The folder a combo label stands for."""
    if label.startswith("models/"):
        return str(Path(folder_paths.models_dir) / label[len("models/"):])
    return label


def model_folders() -> list[str]:
    """Every registered folder that holds a Step-Audio-EditX download, as the combo lists them.

    The AWQ 4-bit folder is listed on its own (as ``<folder>/Step-Audio-EditX-AWQ-4bit``), so either
    LM can be picked when both sit side by side.
    """
    from ..stepaudio_core.bundle import full_lm_is_borrowed

    found = []
    for base in folder_paths.get_folder_paths(FOLDER):
        full = (Path(base) / "Step-Audio-EditX").is_dir() and not full_lm_is_borrowed(Path(base))
        for label, listed in ((_label(base), full), (_label(str(Path(base) / AWQ_DIR)), (Path(base) / AWQ_DIR).is_dir())):
            if listed and label not in found:
                found.append(label)
    return found


def get_handle(folder: str, device: str, dtype: str, quantization: str = "none"):
    from ..stepaudio_core.pipeline import StepAudioEditX
    from .management import ComfyPlacer, comfy_device, comfy_dtype

    dev = comfy_device(device)
    dtype = comfy_dtype(dtype, dev)
    key = (str(Path(folder).resolve()), str(dev), dtype, quantization)
    with _HANDLES_LOCK:
        # a handle that fails to open is not stored, so the run after the user's fix opens it afresh
        if key not in _HANDLES:
            _HANDLES[key] = StepAudioEditX(folder, device=str(dev), dtype=dtype, quantization=quantization, placer=ComfyPlacer(dev))
        return _HANDLES[key]


class StepAudioModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        folders = model_folders()
        return io.Schema(
            node_id="StepAudioModelLoader",
            display_name="StepAudio Model Loader",
            category=CATEGORY,
            description="Finds the Step-Audio-EditX model files and returns a handle that the other StepAudio "
            "nodes share. Weights load on first use, once per configuration, under ComfyUI's model management.",
            inputs=[
                io.Combo.Input(
                    "models_folder",
                    options=(folders or [NOT_FOUND]) + ([] if any(f.endswith(AWQ_DIR) for f in folders) else [AWQ_OFFER]),
                    tooltip="A folder that holds Step-Audio-EditX/ and Step-Audio-Tokenizer/ "
                    "(models/step_audio_editx, or one added for 'step_audio_editx' in extra_model_paths.yaml). "
                    f"Entries ending in {AWQ_DIR} use the pre-quantized 4-bit language model instead.",
                ),
                io.Combo.Input("device", options=list(limits.DEVICES), default="auto",
                               tooltip="Where the model runs. auto: the device ComfyUI uses (honours --cpu)."),
                io.Combo.Input("dtype", options=list(limits.DTYPES), default="auto",
                               tooltip="Precision of the language model. auto: bf16 where the GPU supports it, "
                               "else fp32. The decoder always runs in fp32, as the reference does."),
                io.Combo.Input("quantization", options=list(limits.QUANTIZATIONS), default="none",
                               tooltip="bitsandbytes quantisation of the language model's linear layers (CUDA "
                               "only; needs the bitsandbytes package). Saves VRAM at a small cost in fidelity. "
                               f"Leave it at none for {AWQ_DIR}: AWQ folders carry their own 4-bit weights."),
                io.Boolean.Input("download", default=False,
                                 tooltip="Download the model from the Hugging Face Hub (about 8 GB) into "
                                 "models/step_audio_editx if it is missing or incomplete (the AWQ entry: the "
                                 "4-bit release, about 3 GB, plus the decoder files). Off: never touches the network."),
            ],
            outputs=[StepAudioModel.Output("model", display_name="model", tooltip="The shared Step-Audio-EditX model handle.")],
        )

    @classmethod
    def execute(cls, models_folder: str, device: str, dtype: str, quantization: str = "none", download: bool = False) -> io.NodeOutput:
        with user_errors("StepAudio Model Loader"):
            if download:
                from ..stepaudio_core.download import download_models

                awq = models_folder == AWQ_OFFER or models_folder.endswith(AWQ_DIR)
                if models_folder in (NOT_FOUND, AWQ_OFFER):
                    target = folder_paths.get_folder_paths(FOLDER)[0]
                else:
                    target = resolve_folder(models_folder)
                    target = str(Path(target).parent) if awq else target
                download_models(target, progress=log.info, awq=awq)
                models_folder = str(Path(target) / AWQ_DIR) if awq else target
            elif models_folder == AWQ_OFFER:
                from ..stepaudio_core.errors import InputError

                raise InputError(f"{AWQ_DIR} is not downloaded yet: turn on download to fetch it, or pick another folder.")
            return io.NodeOutput(get_handle(resolve_folder(models_folder), device, dtype, quantization))
