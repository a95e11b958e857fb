"""StepAudio Edit (iterate): N edit passes, every one returned, as the reference's n_edit_iter does."""

from __future__ import annotations

from comfy_api.latest import io

from ..stepaudio_core import limits
from .audio import to_comfy_audio
from .edit import edit_inputs, piece_seconds_input, speech_inputs, speech_options
from .errors import user_errors
from .progress import TokenProgress
from .types import CATEGORY, StepAudioTokens

MODES = {
    "audio round trip (reference)": "audio",
    "token space (faster, not the reference)": "tokens",
}


class StepAudioEditIterate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioEditIterate",
            display_name="StepAudio Edit (iterate)",
            category=CATEGORY,
            description="Runs several edit passes, each on the previous result, and returns every pass so you can "
            "pick. Some edits (whisper, strong emotions) get stronger with 2-3 passes.",
            inputs=[
                *edit_inputs(),
                io.Int.Input("iterations", default=2, min=1, max=limits.MAX_EDIT_PASSES, tooltip="How many edit passes to run."),
                io.Combo.Input("mode", options=list(MODES), default="audio round trip (reference)",
                               tooltip="audio round trip: decode each pass and re-encode it, exactly as the reference "
                               "does. token space: feed each pass's tokens straight into the next (skips decode and "
                               "re-encode between passes; faster, not what the reference does)."),
                io.Int.Input("flow_steps", default=limits.DEFAULT_FLOW_STEPS, min=limits.MIN_FLOW_STEPS, max=limits.MAX_FLOW_STEPS,
                             tooltip="Euler steps of the decoder for every pass; 10 is the released setting."),
                piece_seconds_input(),
                *speech_inputs(),
            ],
            outputs=[
                io.Audio.Output("passes", display_name="passes", tooltip="Every pass in order, 24 kHz mono: one AUDIO per pass.",
                                is_output_list=True),
                io.Audio.Output("final", display_name="final", tooltip="The last pass."),
                StepAudioTokens.Output("tokens", display_name="tokens", tooltip="The last pass's tokens."),
            ],
        )

    @classmethod
    def execute(cls, model, prompt, edit_type: str, option: str, new_text: str, seed: int, iterations: int,
                mode: str, flow_steps: int, max_piece_seconds: float = limits.DEFAULT_PIECE_SECONDS, word_timings=None,
                asr=None) -> io.NodeOutput:
        if len(prompt) != 1:
            with user_errors("StepAudio Edit (iterate)"):
                from ..stepaudio_core.errors import InputError

                raise InputError(f"input 'prompt' holds a batch of {len(prompt)} recordings; iterate one recording "
                                 "at a time (split the batch before StepAudio Encode)")
        progress = TokenProgress(passes=iterations)
        with user_errors("StepAudio Edit (iterate)"):
            (speech,) = speech_options(word_timings, asr, 1)
            passes = model.iterate_edit(
                prompt[0], edit_type, option, new_text=new_text, n_iter=iterations, seed=seed,
                mode=MODES.get(mode, mode), flow_steps=flow_steps, on_token=progress, on_pass=progress.start_pass,
                max_piece_seconds=max_piece_seconds, on_piece=progress.start_piece, **speech,
            )
        audios = [to_comfy_audio([wav], model.sample_rate) for _, wav in passes]
        return io.NodeOutput(audios, audios[-1], (passes[-1][0],))
