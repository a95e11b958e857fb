"""StepAudio Dialogue through the ComfyUI stand-in: schema, outputs, progress, cancel, one-line errors."""

import pytest
import soundfile as sf
import torch

from tests.conftest import FIXTURES

SCRIPT = "[Alice] Hello there!\n[bob] Oh, hi! [Laughter]\n# a comment\n[pause 0.2]\n[Alice] See you.\n"
NAMES = ("Alice", "Bob", "Carol", "Dave")
WIDGETS = {"pause": 0.5, "seed": 4, "temperature": 0.7, "flow_steps": 1, "max_seconds": 0.5}


@pytest.fixture
def model(pack, tiny_bundle):
    return pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]


def _voice(pack, model, name, text):
    data, sr = sf.read(FIXTURES / "audio" / name, dtype="float32")
    audio = {"waveform": torch.from_numpy(data[: int(1.5 * sr)])[None, None], "sample_rate": sr}
    return pack.nodes.encode.StepAudioEncode.execute(model, audio, text)[0]


@pytest.fixture
def voices(pack, model):
    return {
        "voice_1": _voice(pack, model, "en2_24k.wav", "Please call Stella."),
        "voice_2": _voice(pack, model, "en1_24k.wav", "It was a sunny day."),
    }


def _run(pack, model, script, voices, names=NAMES, **widgets):
    node = pack.nodes.dialogue.StepAudioDialogue
    names = dict(zip(("name_1", "name_2", "name_3", "name_4"), names))
    return node.execute(model, script, **names, **(WIDGETS | widgets), **voices)


def test_schema(pack):
    schema = pack.nodes.dialogue.StepAudioDialogue.GET_SCHEMA()
    inputs = {i.id: i for i in schema.inputs}
    assert [i for i in inputs if i.startswith("voice_")] == ["voice_1", "voice_2", "voice_3", "voice_4"]
    assert all(
        inputs[f"voice_{i}"].optional and inputs[f"voice_{i}"].io_type == "STEP_AUDIO_PROMPT" for i in range(1, 5)
    )
    assert [inputs[f"name_{i}"].default for i in range(1, 5)] == list(NAMES)
    assert [(o.id, o.io_type, o.is_output_list) for o in schema.outputs] == [
        ("audio", "AUDIO", False),
        ("lines", "AUDIO", True),
        ("subtitles", "STRING", False),
    ]
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)


def test_dialogue_outputs_the_scene_every_line_and_subtitles(pack, model, voices, comfy):
    audio, lines, srt = _run(pack, model, SCRIPT, voices).args
    assert audio["sample_rate"] == 24000 and audio["waveform"].shape[:2] == (1, 1)
    assert len(lines) == 3 and all(a["waveform"].shape[:2] == (1, 1) and a["sample_rate"] == 24000 for a in lines)
    whole = audio["waveform"][0, 0]
    n = [a["waveform"].shape[-1] for a in lines]
    gap1, gap2 = 12000, 4800  # the pause widget's 0.5 s, then the script's [pause 0.2]
    assert whole.shape[-1] == sum(n) + gap1 + gap2
    assert torch.equal(whole[n[0] + gap1 : n[0] + gap1 + n[1]], lines[1]["waveform"][0, 0])
    blocks = srt.strip().split("\n\n")
    assert [b.split("\n")[2] for b in blocks] == ["Alice: Hello there!", "Bob: Oh, hi! [Laughter]", "Alice: See you."]
    assert blocks[0].split("\n")[:2] == ["1", f"00:00:00,000 --> 00:00:0{n[0] // 24000},{n[0] % 24000 // 24:03d}"]
    assert comfy.progress and comfy.progress[-1][0] <= comfy.progress[-1][1]

    # the same script again comes from the session's line cache: no generation, the same audio
    comfy.progress.clear()
    again = _run(pack, model, SCRIPT, voices).args
    assert torch.equal(again[0]["waveform"], audio["waveform"]) and again[2] == srt
    assert comfy.progress == []


@pytest.mark.parametrize(
    ("script", "names", "connected", "message"),
    [
        (
            "[Alice] Hi.\n[Carol] Hello.",
            NAMES,
            ("voice_1", "voice_2"),
            r"^StepAudio Dialogue: script line 2: speaker 'Carol' has no voice \(voices: Alice, Bob\); connect a "
            r"StepAudio Encode to voice_3, or use one of those names$",
        ),
        (
            "[Alice] Hi.\n[Zoe] Hello.",
            NAMES,
            ("voice_1",),
            r"script line 2: speaker 'Zoe' has no voice \(voices: Alice\); set an unused name_N to 'Zoe' and connect "
            r"its voice_N",
        ),
        (
            "[Alice|sleepy] Hi.",
            NAMES,
            ("voice_1",),
            r"^StepAudio Dialogue: script line 1: unknown instruction 'sleepy'",
        ),
        ("", NAMES, ("voice_1",), r"^StepAudio Dialogue: the script has no lines to speak"),
        ("[Alice] [Sigh]", NAMES, ("voice_1",), r"^StepAudio Dialogue: script line 1: the line is only \[Sigh\]"),
        (
            "[Alice] Hi.",
            ("Alice", "alice", "C", "D"),
            ("voice_1", "voice_2"),
            r"^StepAudio Dialogue: name_2 'alice' names two voices",
        ),
        (
            "[Alice] Hi.",
            ("Alice", " ", "C", "D"),
            ("voice_1", "voice_2"),
            r"^StepAudio Dialogue: voice_2 is connected but name_2 is empty",
        ),
    ],
)
def test_errors_are_one_line_naming_the_node(pack, model, voices, script, names, connected, message):
    err = pack.nodes.errors.StepAudioNodeError
    with pytest.raises(err, match=message) as e:
        _run(pack, model, script, {k: v for k, v in voices.items() if k in connected}, names=names)
    assert "\n" not in str(e.value)


def test_a_batch_on_one_voice_is_refused(pack, model, voices):
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="input 'voice_1' holds a batch of 2 recordings"):
        _run(pack, model, "[Alice] Hi.", {"voice_1": voices["voice_1"] + voices["voice_2"]})


def test_cancel_stops_within_a_token_and_the_next_run_works(pack, model, voices, comfy, monkeypatch):
    mm = __import__("comfy.model_management", fromlist=["x"])
    model.line_cache.clear()
    seen = []
    real = pack.nodes.progress.TokenProgress.__call__

    def press_cancel(self, done, total):
        seen.append(done)
        if done == 3:
            comfy.interrupted = True
        real(self, done, total)

    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", press_cancel)
    with pytest.raises(mm.InterruptProcessingException):
        _run(pack, model, "[Alice] Hello there.\n[Bob] Hi.", voices)
    assert seen[-1] == 3 and len(model.line_cache) == 0
    monkeypatch.setattr(pack.nodes.progress.TokenProgress, "__call__", real)
    assert len(_run(pack, model, "[Alice] Hello there.\n[Bob] Hi.", voices)[1]) == 2


def test_three_speakers_twenty_lines_in_one_node(pack, model, voices, comfy):
    """The issue's done-criterion: a 3-speaker, 20-line script in one node, with subtitles."""
    voices = voices | {"voice_3": voices["voice_1"]}  # a third name may share a recording
    speakers = ["Alice", "Bob", "Carol", "Bob", "Alice"] * 4
    speakers[1] = "Bob|happy"  # one edited line: an edit pass costs about as much as five short clones here
    script = "\n".join(f"[{s}] Line number {i + 1}." for i, s in enumerate(speakers))
    audio, lines, srt = _run(pack, model, script, voices, max_seconds=0.25).args
    cues = srt.strip().split("\n\n")
    assert len(lines) == 20 and len(cues) == 20
    assert [c.split("\n")[2] for c in cues[:3]] == [
        "Alice: Line number 1.",
        "Bob: Line number 2.",
        "Carol: Line number 3.",
    ]
    total = sum(a["waveform"].shape[-1] for a in lines) + 19 * 12000
    assert audio["waveform"].shape[-1] == total
