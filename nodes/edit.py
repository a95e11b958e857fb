"""StepAudio Edit: change the emotion, style, speed, sounds, noise or silence of an encoded recording."""

from __future__ import annotations

from comfy_api.latest import io

from ..stepaudio_core import limits
from ..stepaudio_core.edits import EDIT_TYPES, all_options
from ..stepaudio_core.limits import DEFAULT_PIECE_SECONDS, MIN_PIECE_SECONDS, WINDOW_SECONDS
from .errors import user_errors
from .progress import TokenProgress
from .types import CATEGORY, StepAudioASR, StepAudioModel, StepAudioPrompt, StepAudioTokens, StepAudioTranscript


def edit_inputs() -> list:
    """The inputs Edit and Edit (iterate) share. The web extension narrows 'option' to the chosen type."""
    return [
        StepAudioModel.Input("model", tooltip="From StepAudio Model Loader."),
        StepAudioPrompt.Input("prompt", tooltip="The recording to edit, from StepAudio Encode (with its transcript, "
                              "except for denoise and vad)."),
        io.Combo.Input("edit_type", options=list(EDIT_TYPES), default="emotion",
                       tooltip="emotion, style, speed: pick an option. paralinguistic: write the new text with tags. "
                       "denoise, vad (remove silence): no option, no transcript needed."),
        io.Combo.Input("option", options=all_options(), default="happy",
                       tooltip="The target emotion, style or speed ('remove' strips it); 'none' for types without "
                       "options. The list follows the edit type."),
        io.String.Input("new_text", multiline=True, default="",
                        tooltip="paralinguistic only: the transcript with sounds inserted where they belong, e.g. "
                        "'I can't believe it [Laughter] really worked.'"),
        io.Int.Input("seed", default=0, min=limits.SEED_MIN, max=limits.SEED_MAX, control_after_generate=True,
                     tooltip="Seeds the sampling; the same seed gives the same tokens."),
    ]


def piece_seconds_input() -> io.Float.Input:
    return io.Float.Input(
        "max_piece_seconds", default=DEFAULT_PIECE_SECONDS, min=MIN_PIECE_SECONDS, max=WINDOW_SECONDS, step=0.5,
        tooltip=f"A recording longer than this is cut at pauses into pieces at most this long; each piece is edited "
        f"and they are joined back with the pauses between, so recordings of any length work. The model edits at "
        f"most {WINDOW_SECONDS:.0f} s; the default {DEFAULT_PIECE_SECONDS:.0f} s leaves room for a slower speed edit.",
    )


def speech_inputs() -> list:
    """Optional speech recognition for long recordings: where to cut, and the transcript of each piece."""
    return [
        StepAudioTranscript.Input(
            "word_timings", optional=True,
            tooltip="From StepAudio Transcribe of the same recording: a long recording is cut between its words, and "
            "each piece gets exactly its own words of the transcript (without: in proportion to spoken length).",
        ),
        StepAudioASR.Input(
            "asr", optional=True,
            tooltip="From StepAudio ASR Loader: when the Encode transcript is empty, the recording (a long one: each "
            "piece) is transcribed.",
        ),
    ]


def speech_options(word_timings, asr, clips: int) -> list[dict]:
    """Per clip of the prompt batch: the ``words`` and ``transcriber`` arguments of the core's edit."""
    if word_timings is not None and len(word_timings) != clips:
        from ..stepaudio_core.errors import InputError

        raise InputError(f"input 'word_timings' holds {len(word_timings)} transcripts for {clips} recordings; "
                         "transcribe the same audio that went into StepAudio Encode")
    transcriber = None if asr is None else (lambda wav, rate: asr.transcribe(wav, rate, word_timings=False))
    return [{"words": None if word_timings is None else word_timings[i], "transcriber": transcriber}
            for i in range(clips)]


class StepAudioEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioEdit",
            display_name="StepAudio Edit",
            category=CATEGORY,
            description="One edit pass: the language model rewrites the recording's audio tokens as instructed, "
            "keeping the voice. A recording of any length works: a long one is edited in pieces cut at pauses. Decode the "
            "result, or re-encode it for another pass (or use Edit (iterate)).",
            inputs=[*edit_inputs(), piece_seconds_input(), *speech_inputs()],
            outputs=[StepAudioTokens.Output("tokens", display_name="tokens", tooltip="Edited audio tokens; connect to StepAudio Decode.")],
        )

    @classmethod
    def execute(cls, model, prompt, edit_type: str, option: str, new_text: str, seed: int,
                max_piece_seconds: float = DEFAULT_PIECE_SECONDS, word_timings=None, asr=None) -> io.NodeOutput:
        progress = TokenProgress(passes=len(prompt))
        out = []
        with user_errors("StepAudio Edit"):
            for i, (p, speech) in enumerate(zip(prompt, speech_options(word_timings, asr, len(prompt)))):
                progress.start_pass(i)
                out.append(model.edit(p, edit_type, option, new_text=new_text, seed=seed, on_token=progress,
                                      max_piece_seconds=max_piece_seconds, on_piece=progress.start_piece, **speech))
        return io.NodeOutput(tuple(out))
