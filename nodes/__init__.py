"""The ComfyUI adapters. Model code is imported inside ``execute``, so loading the pack stays cheap."""

from comfy_api.latest import ComfyExtension, io

from .asr import StepAudioASRLoader, StepAudioTranscribe
from .clone import StepAudioClone
from .decode import StepAudioDecode
from .dialogue import StepAudioDialogue
from .edit import StepAudioEdit
from .encode import StepAudioEncode
from .iterate import StepAudioEditIterate
from .loader import StepAudioModelLoader, register_model_folder


class StepAudioExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_model_folder()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [StepAudioModelLoader, StepAudioEncode, StepAudioClone, StepAudioEdit, StepAudioEditIterate, StepAudioDecode,
                StepAudioDialogue, StepAudioASRLoader, StepAudioTranscribe]
