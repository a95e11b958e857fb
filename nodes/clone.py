"""StepAudio Clone: new text in the voice of an encoded reference."""

from __future__ import annotations

from comfy_api.latest import io

from ..stepaudio_core import limits
from ..stepaudio_core.edits import LANGUAGE_TAGS
from .errors import user_errors
from .progress import TokenProgress
from .types import CATEGORY, StepAudioModel, StepAudioPrompt, StepAudioTokens


class StepAudioClone(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioClone",
            display_name="StepAudio Clone",
            category=CATEGORY,
            description="Zero-shot voice cloning: the language model speaks the text in the reference's timbre, "
            "prosody and style. Text longer than one generation is split at sentence ends and joined when decoded.",
            inputs=[
                StepAudioModel.Input("model", tooltip="From StepAudio Model Loader."),
                StepAudioPrompt.Input("prompt", tooltip="The reference voice, from StepAudio Encode (with its transcript)."),
                io.String.Input("text", multiline=True, default="",
                                tooltip="What the cloned voice should say. Paralinguistic tags such as [Laughter] "
                                "may be written inline; polyphones can be forced with pinyin (guo4)."),
                io.Combo.Input("language", options=["none", *LANGUAGE_TAGS], default="none",
                               tooltip="Dialect or language tag put before the text. none for Mandarin and English."),
                io.Int.Input("seed", default=0, min=limits.SEED_MIN, max=limits.SEED_MAX, control_after_generate=True,
                             tooltip="Seeds the sampling; the same seed gives the same tokens."),
                io.Float.Input("temperature", default=limits.DEFAULT_TEMPERATURE, min=limits.MIN_TEMPERATURE,
                               max=limits.MAX_TEMPERATURE, step=0.05,
                               tooltip="Sampling temperature. 0.7 is the released setting."),
                io.Float.Input("max_seconds", default=0.0, min=0.0, max=limits.MAX_GENERATION_SECONDS, step=1.0,
                               tooltip="Upper bound on the audio generated per text piece; 0 derives it from the "
                               "text length. Guards against a generation that never stops."),
            ],
            outputs=[StepAudioTokens.Output("tokens", display_name="tokens", tooltip="Audio tokens; connect to StepAudio Decode.")],
        )

    @classmethod
    def execute(cls, model, prompt, text: str, language: str, seed: int, temperature: float, max_seconds: float) -> io.NodeOutput:
        progress = TokenProgress(passes=len(prompt))
        out = []
        with user_errors("StepAudio Clone"):
            for i, p in enumerate(prompt):
                progress.start_pass(i)
                out.append(model.clone(
                    p, text, language=None if language == "none" else language, seed=seed, temperature=temperature,
                    max_seconds=max_seconds or None, on_token=progress,
                ))
        return io.NodeOutput(tuple(out))
