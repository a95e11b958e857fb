"""Step-Audio-EditX for ComfyUI: voice cloning and audio editing nodes.

ComfyUI imports this file at start-up; it only defines the entry point. The nodes (and, when a
node runs, the model code) are imported on demand.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import StepAudioExtension, register_model_folder

    # Older ComfyUI builds do not call on_load, so register the model folder here as well.
    register_model_folder()
    return StepAudioExtension()
