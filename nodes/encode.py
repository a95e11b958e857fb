"""StepAudio Encode: a recording (+ its transcript) -> the model's prompt (codes, mel, voice)."""

from __future__ import annotations

from comfy_api.latest import io

from .errors import user_errors
from .types import CATEGORY, StepAudioASR, StepAudioModel, StepAudioPrompt


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
                io.Boolean.Input("auto_transcribe", default=False, optional=True,
                                 tooltip="When the transcript is empty, let the connected ASR write it (it comes out "
                                 "of 'transcript used'). A typed transcript is always used as it is."),
                StepAudioASR.Input("asr", optional=True, tooltip="From StepAudio ASR Loader; used by auto_transcribe."),
            ],
            outputs=[
                StepAudioPrompt.Output("prompt", display_name="prompt", tooltip="The encoded recording, for Clone, Edit and Decode."),
                io.String.Output("transcript_used", display_name="transcript used",
                                 tooltip="The transcript that was encoded: the typed one, or the ASR's (one line per clip)."),
            ],
        )

    @classmethod
    def execute(cls, model, audio: dict, transcript: str, auto_transcribe: bool = False, asr=None) -> io.NodeOutput:
        with user_errors("StepAudio Encode"):
            if transcript.strip() or not auto_transcribe:
                prompts = model.encode_batch(audio["waveform"], audio["sample_rate"], transcript)
                texts = [transcript] * len(prompts)
            else:
                from ..stepaudio_core.errors import InputError

                if asr is None:
                    raise InputError("auto_transcribe is on and the transcript is empty, but no ASR is connected: "
                                     "connect StepAudio ASR Loader to the 'asr' input, or type the transcript")
                results = asr.transcribe_batch(audio["waveform"], audio["sample_rate"], word_timings=False)
                texts = [t.text for t in results]
                prompts = tuple(model.encode(w, audio["sample_rate"], t) for w, t in zip(audio["waveform"], texts))
        used = "\n".join(texts)
        return io.NodeOutput(prompts, used, ui={"text": [used]})
