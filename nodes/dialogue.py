"""StepAudio Dialogue: a multi-speaker script, one voice per speaker -> the scene, every line, and subtitles."""

from __future__ import annotations

from comfy_api.latest import io

from ..stepaudio_core import limits
from .audio import to_comfy_audio
from .errors import user_errors
from .progress import TokenProgress
from .types import CATEGORY, StepAudioModel, StepAudioPrompt

VOICES = 4
DEFAULT_NAMES = ("Alice", "Bob", "Carol", "Dave")
EXAMPLE = "[Alice] Hello there!\n[Bob|happy] Oh, hi! [Laughter] I didn't see you.\n[Alice|whisper] Not so loud.\n"


class _Progress:
    """One bar over every generation of the run (lines x pieces x clone/edit); the bar is sized once the
    cache has told how many generations are left. Cancel stops within one token, as in Clone."""

    def __init__(self):
        self.bar: TokenProgress | None = None

    def on_pass(self, index: int, total: int) -> None:
        if self.bar is None:
            self.bar = TokenProgress(passes=total)
        self.bar.start_pass(index)

    def on_token(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar(done, total)


class StepAudioDialogue(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = [
            io.String.Input(
                f"name_{i}",
                default=DEFAULT_NAMES[i - 1],
                tooltip=f"The speaker name the script uses for voice_{i}, e.g. [{DEFAULT_NAMES[i - 1]}]. "
                "Matched without regard to case.",
            )
            for i in range(1, VOICES + 1)
        ]
        voices = [
            StepAudioPrompt.Input(
                f"voice_{i}",
                optional=True,
                tooltip=f"The voice of name_{i}: StepAudio Encode of a recording with its "
                "transcript. Connect one per speaker; unused ones may stay empty.",
            )
            for i in range(1, VOICES + 1)
        ]
        return io.Schema(
            node_id="StepAudioDialogue",
            display_name="StepAudio Dialogue",
            category=CATEGORY,
            description="Speaks a script of several voices in one node: each line names its speaker "
            "([Alice] Hello!), may carry an emotion, style or speed ([Bob|happy] ...) and inline sound tags. Returns "
            "the whole scene, every line on its own, and SRT subtitles. Unchanged lines are reused within a session.",
            inputs=[
                StepAudioModel.Input("model", tooltip="From StepAudio Model Loader."),
                io.String.Input(
                    "script",
                    multiline=True,
                    default=EXAMPLE,
                    tooltip="One line per utterance: [Name] text, or [Name|instruction] text. Instructions: "
                    "an emotion, style or speed (happy, whisper, faster; type:option where two types share "
                    "one, e.g. style:remove) or a language (Cantonese). Sound tags such as [Laughter] go "
                    "inline. [pause 1.5] sets a pause; # starts a comment.",
                ),
                *names,
                io.Float.Input(
                    "pause",
                    default=limits.DEFAULT_PAUSE_SECONDS,
                    min=0.0,
                    max=limits.MAX_PAUSE_SECONDS,
                    step=0.05,
                    tooltip="Seconds of silence between lines, where the script sets no [pause].",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=limits.SEED_MIN,
                    max=limits.SEED_MAX,
                    control_after_generate=True,
                    tooltip="One seed for the script; each line derives its own from it and its content, so "
                    "changing one line re-renders only that line.",
                ),
                io.Float.Input(
                    "temperature",
                    default=limits.DEFAULT_TEMPERATURE,
                    min=limits.MIN_TEMPERATURE,
                    max=limits.MAX_TEMPERATURE,
                    step=0.05,
                    tooltip="Sampling temperature. 0.7 is the released setting.",
                ),
                io.Int.Input(
                    "flow_steps",
                    default=limits.DEFAULT_FLOW_STEPS,
                    min=limits.MIN_FLOW_STEPS,
                    max=limits.MAX_FLOW_STEPS,
                    tooltip="Euler steps of the decoder; 10 is the released setting.",
                ),
                io.Float.Input(
                    "max_seconds",
                    default=0.0,
                    min=0.0,
                    max=limits.MAX_GENERATION_SECONDS,
                    step=1.0,
                    tooltip="Upper bound on the audio generated per line piece; 0 derives it from the "
                    "text length. Guards against a generation that never stops.",
                ),
                *voices,
            ],
            outputs=[
                io.Audio.Output("audio", display_name="audio", tooltip="The whole dialogue, 24 kHz mono."),
                io.Audio.Output(
                    "lines",
                    display_name="lines",
                    is_output_list=True,
                    tooltip="Every spoken line on its own, in script order (a list: one AUDIO per line).",
                ),
                io.String.Output(
                    "subtitles",
                    display_name="subtitles",
                    tooltip="SRT subtitles: each line's start and end in the whole audio, speaker named.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        script: str,
        name_1: str,
        name_2: str,
        name_3: str,
        name_4: str,
        pause: float,
        seed: int,
        temperature: float,
        flow_steps: int,
        max_seconds: float,
        voice_1=None,
        voice_2=None,
        voice_3=None,
        voice_4=None,
    ) -> io.NodeOutput:
        from ..stepaudio_core.dialogue import render_dialogue
        from ..stepaudio_core.errors import InputError

        slots = list(zip((name_1, name_2, name_3, name_4), (voice_1, voice_2, voice_3, voice_4)))
        progress = _Progress()
        with user_errors("StepAudio Dialogue"):
            voices = {}
            for i, (name, voice) in enumerate(slots, start=1):
                if voice is None:
                    continue
                if not (name or "").strip():
                    raise InputError(f"voice_{i} is connected but name_{i} is empty; write the name the script uses")
                if len(voice) != 1:
                    raise InputError(
                        f"input 'voice_{i}' holds a batch of {len(voice)} recordings; connect one recording per voice"
                    )
                if name.strip().lower() in {n.lower() for n in voices}:
                    raise InputError(f"name_{i} '{name.strip()}' names two voices; give each voice its own name")
                voices[name.strip()] = voice[0]

            def how_to_add(speaker: str) -> str:
                slot = next((i for i, (n, _) in enumerate(slots, 1) if n.strip().lower() == speaker.lower()), None)
                if slot is not None:
                    return f"connect a StepAudio Encode to voice_{slot}"
                return f"set an unused name_N to '{speaker}' and connect its voice_N"

            dialogue = render_dialogue(
                model,
                voices,
                script,
                seed=seed,
                pause=pause,
                temperature=temperature,
                flow_steps=flow_steps,
                max_seconds=max_seconds or None,
                how_to_add=how_to_add,
                on_pass=progress.on_pass,
                on_token=progress.on_token,
            )
        lines = [to_comfy_audio([r.audio], dialogue.sample_rate) for r in dialogue.lines]
        return io.NodeOutput(to_comfy_audio([dialogue.audio], dialogue.sample_rate), lines, dialogue.srt())
