"""StepAudio Decode: audio tokens (+ the prompt's voice) -> 24 kHz mono AUDIO."""

from __future__ import annotations

from comfy_api.latest import io

from ..stepaudio_core import limits
from .audio import to_comfy_audio
from .errors import user_errors
from .types import CATEGORY, StepAudioModel, StepAudioPrompt, StepAudioTokens


class StepAudioDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioDecode",
            display_name="StepAudio Decode",
            category=CATEGORY,
            description="Turns Step-Audio-EditX audio tokens into 24 kHz speech with the released flow-matching "
            "decoder and HiFT vocoder, in the voice of the prompt the tokens were generated for.",
            inputs=[
                StepAudioModel.Input("model", tooltip="From StepAudio Model Loader."),
                StepAudioTokens.Input("tokens", tooltip="Audio tokens from StepAudio Clone or StepAudio Edit."),
                io.Int.Input("seed", default=0, min=limits.SEED_MIN, max=limits.SEED_MAX, control_after_generate=True,
                             tooltip="Seeds the decoder's noise; the same seed gives the same waveform."),
                io.Int.Input("flow_steps", default=limits.DEFAULT_FLOW_STEPS, min=limits.MIN_FLOW_STEPS, max=limits.MAX_FLOW_STEPS,
                             tooltip="Euler steps of the flow decoder. 10 is the released setting; fewer is "
                             "faster with lower fidelity."),
                StepAudioPrompt.Input("voice", optional=True,
                                      tooltip="Optional: decode in this prompt's voice instead of the one the "
                                      "tokens were generated for."),
            ],
            outputs=[io.Audio.Output("audio", display_name="audio", tooltip="24 kHz mono speech, [B, 1, T] (B = the prompt batch).")],
        )

    @classmethod
    def execute(cls, model, tokens, seed: int, flow_steps: int, voice=None) -> io.NodeOutput:
        wavs = []
        with user_errors("StepAudio Decode"):
            for i, t in enumerate(tokens):
                v = None if voice is None else voice[i] if len(voice) == len(tokens) else voice[0]
                wavs.append(model.decode(t, prompt=v, seed=seed, flow_steps=flow_steps))
        return io.NodeOutput(to_comfy_audio(wavs, model.sample_rate))
