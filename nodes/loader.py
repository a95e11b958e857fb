"""StepAudio Model Loader: a model folder, a device and a dtype -> one cached model handle."""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from .errors import user_errors
from .types import CATEGORY, StepAudioModel

FOLDER = "step_audio_editx"

# The pack's one piece of global state: model handles by configuration, so every node and every
# queued prompt that asks for the same model shares its loaded weights.
_HANDLES: dict[tuple, object] = {}


def register_model_folder() -> None:
    """Make ``models/step_audio_editx`` known to ComfyUI, so extra_model_paths.yaml can add more."""
    folder_paths.add_model_folder_path(FOLDER, str(Path(folder_paths.models_dir) / FOLDER))


def model_folders() -> list[str]:
    """Every registered folder that holds a Step-Audio-EditX download, as the combo lists them."""
    found = []
    for base in folder_paths.get_folder_paths(FOLDER):
        if (Path(base) / "Step-Audio-EditX").is_dir() and base not in found:
            found.append(base)
    return found


def get_handle(folder: str, device: str, dtype: str):
    from ..stepaudio_core.pipeline import StepAudioEditX
    from .management import ComfyPlacer, comfy_device, comfy_dtype

    dev = comfy_device(device)
    dtype = comfy_dtype(dtype, dev)
    key = (str(Path(folder).resolve()), str(dev), dtype)
    if key not in _HANDLES:
        _HANDLES[key] = StepAudioEditX(folder, device=str(dev), dtype=dtype, placer=ComfyPlacer(dev))
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
            "nodes share. Weights load on first use, once per configuration.",
            inputs=[
                io.Combo.Input(
                    "models_folder",
                    options=folders or ["(no Step-Audio-EditX folder found under models/step_audio_editx)"],
                    tooltip="A folder that holds Step-Audio-EditX/ and Step-Audio-Tokenizer/ "
                    "(models/step_audio_editx, or one added for 'step_audio_editx' in extra_model_paths.yaml).",
                ),
                io.Combo.Input("device", options=["auto", "cpu", "cuda", "mps"], default="auto",
                               tooltip="Where the model runs. auto: CUDA, then MPS, then CPU."),
                io.Combo.Input("dtype", options=["auto", "bf16", "fp16", "fp32"], default="auto",
                               tooltip="Precision of the language model. auto: bf16 where the GPU supports it, "
                               "else fp32. The decoder always runs in fp32, as the reference does."),
            ],
            outputs=[StepAudioModel.Output("model", display_name="model", tooltip="The shared Step-Audio-EditX model handle.")],
        )

    @classmethod
    def execute(cls, models_folder: str, device: str, dtype: str) -> io.NodeOutput:
        with user_errors("StepAudio Model Loader"):
            return io.NodeOutput(get_handle(models_folder, device, dtype))
