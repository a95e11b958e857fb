"""StepAudio Encode: a recording (+ its transcript) -> the model's prompt (codes, mel, voice)."""

from __future__ import annotations

from comfy_api.latest import io

from .errors import user_errors
from .types import CATEGORY, StepAudioModel, StepAudioPrompt


class StepAudioEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioEncode",
            display_name="StepAudio Encode",
            category=CATEGORY,
            description="Encodes a reference voice (for Clone) or the recording to edit (for Edit): dual-codebook "
            "audio tokens, the decoder's mel and the CAM++ voice embedding. The same audio and transcript are "
            "encoded once per session and then served from a cache.",
            inputs=[
                StepAudioModel.Input("model", tooltip="From StepAudio Model Loader."),
                io.Audio.Input("audio", tooltip="Any sample rate and channel count (mixed to mono). Any length for Edit "
                               "(a long recording is edited in pieces); a clone reference uses its first 30 s. A "
                               "batch encodes each clip."),
                io.String.Input("transcript", multiline=True, default="",
                                tooltip="What the recording says, word for word. Needed for cloning and for "
                                "emotion, style, speed and paralinguistic edits; denoise and vad do not use it."),
            ],
            outputs=[StepAudioPrompt.Output("prompt", display_name="prompt", tooltip="The encoded recording, for Clone, Edit and Decode.")],
        )

    @classmethod
    def execute(cls, model, audio: dict, transcript: str) -> io.NodeOutput:
        with user_errors("StepAudio Encode"):
            prompts = model.encode_batch(audio["waveform"], audio["sample_rate"], transcript)
        return io.NodeOutput(prompts)
