"""StepAudio ASR Loader and StepAudio Transcribe: Whisper speech recognition for any AUDIO."""

from __future__ import annotations

import logging
from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..stepaudio_core import limits
from ..stepaudio_core.asr.folder import ASR_DIR, DEFAULT_ASR_MODEL, KNOWN_ASR_MODELS
from ..stepaudio_core.limits import ASR_LANGUAGES as LANGUAGES
from .errors import user_errors
from .loader import _HANDLES, _HANDLES_LOCK, FOLDER
from .types import CATEGORY, StepAudioASR, StepAudioTranscript

log = logging.getLogger(__name__)
KNOWN = tuple(KNOWN_ASR_MODELS)  # the default first: the widget lists them when ComfyUI starts


def asr_models() -> list[str]:
    """The two downloadable Whisper models, then every other folder under an ``asr/`` of our model folders."""
    names = list(KNOWN)
    for base in folder_paths.get_folder_paths(FOLDER):
        root = Path(base) / ASR_DIR
        if root.is_dir():
            names += sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in names)
    return names


def asr_folder(name: str) -> Path:
    """The first registered folder holding ``asr/<name>``; for a missing one, where a download puts it."""
    bases = [Path(b) for b in folder_paths.get_folder_paths(FOLDER)]
    for base in bases:
        if (base / ASR_DIR / name).is_dir():
            return base / ASR_DIR / name
    if Path(name).is_absolute():  # a folder path typed in an API prompt
        return Path(name)
    return bases[0] / ASR_DIR / name


def get_recognizer(folder: Path, device: str, dtype: str):
    from ..stepaudio_core.asr.recognizer import SpeechRecognizer
    from .management import ComfyPlacer, comfy_device

    dev = comfy_device(device)
    # fp16/bf16 on a GPU (bf16 where ComfyUI says it is fast, else fp16), fp32 on the CPU.
    if dtype == "auto":
        import comfy.model_management as mm

        dtype = "fp32" if dev.type == "cpu" else ("bf16" if mm.should_use_bf16(dev) else "fp16")
    key = ("asr", str(folder.resolve()), str(dev), dtype)
    with _HANDLES_LOCK:
        if key not in _HANDLES:
            _HANDLES[key] = SpeechRecognizer(folder, device=str(dev), dtype=dtype, placer=ComfyPlacer(dev))
        return _HANDLES[key]


class StepAudioASRLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioASRLoader",
            display_name="StepAudio ASR Loader",
            category=CATEGORY,
            description="A Whisper speech recognizer (transformers format) for StepAudio Transcribe and for "
            "automatic transcripts in StepAudio Encode. Loads on first use, under ComfyUI's model management.",
            inputs=[
                io.Combo.Input("asr_model", options=asr_models(), default=DEFAULT_ASR_MODEL,
                               tooltip="A folder under models/step_audio_editx/asr/ (or under asr/ of a folder added for "
                               "'step_audio_editx' in extra_model_paths.yaml). turbo: 1.6 GB, fast; large-v3: 3.1 GB, "
                               "the reference's model, slower decoding."),
                io.Combo.Input("device", options=list(limits.DEVICES), default="auto",
                               tooltip="Where Whisper runs. auto: the device ComfyUI uses (honours --cpu)."),
                io.Combo.Input("dtype", options=list(limits.DTYPES), default="auto",
                               tooltip="auto: fp16/bf16 on a GPU, fp32 on the CPU."),
                io.Boolean.Input("download", default=False,
                                 tooltip="Download whisper-large-v3-turbo or whisper-large-v3 from the Hugging Face Hub "
                                 "into models/step_audio_editx/asr if missing or incomplete (resumes). Off: never "
                                 "touches the network."),
            ],
            outputs=[StepAudioASR.Output("asr", display_name="asr", tooltip="The speech recognizer.")],
        )

    @classmethod
    def execute(cls, asr_model: str, device: str = "auto", dtype: str = "auto", download: bool = False) -> io.NodeOutput:
        with user_errors("StepAudio ASR Loader"):
            folder = asr_folder(asr_model)
            if download and asr_model in KNOWN:
                from ..stepaudio_core.asr.folder import download_asr_model

                folder = download_asr_model(asr_model, folder, progress=log.info)
            return io.NodeOutput(get_recognizer(folder, device, dtype))


class StepAudioTranscribe(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StepAudioTranscribe",
            display_name="StepAudio Transcribe",
            category=CATEGORY,
            description="Speech to text with Whisper: the transcript, and when each word is spoken. Any audio "
            "(any rate, channels, length, batch); recordings over 30 s are transcribed in pieces cut at pauses.",
            inputs=[
                StepAudioASR.Input("asr", tooltip="From StepAudio ASR Loader."),
                io.Audio.Input("audio", tooltip="Any sample rate and channel count (mixed to mono), any length."),
                io.Combo.Input("language", options=list(LANGUAGES), default="auto",
                               tooltip="auto: Whisper detects it. Or the language spoken, which avoids a wrong guess "
                               "on short clips."),
                io.Int.Input("num_beams", default=5, min=1, max=10,
                             tooltip="Beam search width. 5 as the reference's transformers pipeline call; 1 (greedy) "
                             "is faster. Both are deterministic."),
                io.Boolean.Input("word_timings", default=True,
                                 tooltip="Also find when each word starts and ends (one more encoder pass and one "
                                 "decoder pass per 30 s)."),
            ],
            outputs=[
                io.String.Output("text", display_name="text", tooltip="The transcript (one line per clip of a batch)."),
                StepAudioTranscript.Output("transcript", display_name="transcript",
                                           tooltip="Text and word timings, for StepAudio nodes that take them."),
                io.String.Output("timings", display_name="timings",
                                 tooltip="One line per word: start-end in seconds, then the word."),
            ],
        )

    @classmethod
    def execute(cls, asr, audio: dict, language: str = "auto", num_beams: int = 5, word_timings: bool = True) -> io.NodeOutput:
        from .progress import TokenProgress

        with user_errors("StepAudio Transcribe"):
            progress = TokenProgress(passes=int(audio["waveform"].shape[0]))
            results = []
            for i, clip in enumerate(audio["waveform"]):
                progress.start_pass(i)
                results += asr.transcribe_batch(clip[None], audio["sample_rate"], language=language,
                                                num_beams=num_beams, word_timings=word_timings, on_piece=progress)
        text = "\n".join(t.text for t in results)
        timings = "\n\n".join(t.timings_text() for t in results)
        return io.NodeOutput(text, tuple(results), timings, ui={"text": [text]})
