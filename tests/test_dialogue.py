"""Rendering dialogue scripts on a tiny model folder: joined audio, exact SRT timings, per-line reuse."""

import re

import pytest
import soundfile as sf
import torch

from stepaudio_core.dialogue import line_seed, parse_script, render_dialogue
from stepaudio_core.errors import InputError
from stepaudio_core.pipeline import StepAudioEditX
from tests.conftest import FIXTURES

RATE = 24000
# A tiny random LM never stops by itself: every generation runs to its budget, so keep budgets short.
FAST = {"max_seconds": 0.5, "flow_steps": 1}


@pytest.fixture(scope="module")
def handle(tiny_bundle):
    return StepAudioEditX(tiny_bundle, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def voices(handle):
    def voice(name: str, text: str):
        data, sr = sf.read(FIXTURES / "audio" / name, dtype="float32")
        return handle.encode(torch.from_numpy(data[: int(1.5 * sr)]), sr, text)

    return {"Alice": voice("en2_24k.wav", "Please call Stella."), "Bob": voice("en1_24k.wav", "It was a sunny day.")}


@pytest.fixture
def calls(handle, monkeypatch):
    """Every clone and edit the renderer asks of the facade, as (kind, text or option, seed)."""
    seen = []
    clone, edit = handle.clone, handle.edit

    def counted_clone(prompt, text, **kw):
        seen.append(("clone", text, kw["seed"]))
        return clone(prompt, text, **kw)

    def counted_edit(prompt, edit_type, option=None, **kw):
        seen.append(("edit", f"{edit_type}:{option}", kw["seed"]))
        return edit(prompt, edit_type, option, **kw)

    monkeypatch.setattr(handle, "clone", counted_clone)
    monkeypatch.setattr(handle, "edit", counted_edit)
    handle.line_cache.clear()
    return seen


def srt_samples(srt: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every cue."""
    cues = []
    for block in srt.strip().split("\n\n"):
        number, times, *text = block.split("\n")
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, re.findall(r"\d+", times))
        cues.append(((h1 * 3600 + m1 * 60 + s1) * 1000 + ms1, (h2 * 3600 + m2 * 60 + s2) * 1000 + ms2, "\n".join(text)))
    return cues


SCRIPT = "[pause 0.1]\n[Alice] Hello there!\n[Bob|happy] Oh, hi! [Laughter]\n[pause 0.3]\n[Alice] Bye. [pause 0.2]\n"


def test_joined_audio_and_subtitles_match_to_the_sample(handle, voices, calls):
    passes, tokens = [], []
    scene = render_dialogue(
        handle,
        voices,
        SCRIPT,
        seed=5,
        pause=0.25,
        on_pass=lambda i, n: passes.append((i, n)),
        on_token=lambda done, total: tokens.append(done),
        **FAST,
    )
    lines = scene.lines
    assert [r.line.speaker for r in lines] == ["Alice", "Bob", "Alice"] and scene.sample_rate == RATE
    # the silences: 0.1 s before the first line, the default 0.25 s, the script's 0.3 s, 0.2 s at the end
    assert [lines[0].start, lines[1].start - lines[0].end, lines[2].start - lines[1].end] == [2400, 6000, 7200]
    assert scene.audio.shape[-1] == lines[2].end + 4800
    for r in lines:
        assert r.audio.shape[-1] > 0 and torch.equal(scene.audio[r.start : r.end], r.audio)
    gaps = [
        (0, lines[0].start),
        (lines[0].end, lines[1].start),
        (lines[1].end, lines[2].start),
        (lines[2].end, scene.audio.shape[-1]),
    ]
    assert all(not scene.audio[a:b].any() for a, b in gaps)
    cues = srt_samples(scene.srt())
    assert [text for _, _, text in cues] == ["Alice: Hello there!", "Bob: Oh, hi! [Laughter]", "Alice: Bye."]
    for (start_ms, end_ms, _), r in zip(cues, lines):
        # SRT counts milliseconds (24 samples): each time is the nearest millisecond to the exact sample offset
        assert abs(start_ms * 24 - r.start) <= 12 and abs(end_ms * 24 - r.end) <= 12
    # one clone per line, one edit for the instructed line; each with its line's own seed
    script = parse_script(SCRIPT, voices)
    seeds = [line_seed(5, line) for line in script.lines]
    assert calls == [
        ("clone", "Hello there!", seeds[0]),
        ("clone", "Oh, hi! [Laughter]", seeds[1]),
        ("edit", "emotion:happy", seeds[1]),
        ("clone", "Bye.", seeds[2]),
    ]
    # the progress bar: one pass per generation, and the tokens within it
    assert passes == [(0, 4), (1, 4), (2, 4), (3, 4)] and tokens


def test_a_line_without_instruction_is_what_clone_and_decode_give(handle, voices, calls):
    text = "This is one sentence of a long line. " * 12  # two pieces, split as Clone splits
    scene = render_dialogue(handle, voices, f"[Bob] {text}", seed=3, **FAST)
    (line,) = scene.lines
    assert [c[0] for c in calls] == ["clone", "clone"]
    assert calls[1][2] == calls[0][2] + 1 == line.seed + 1
    calls.clear()
    expected = handle.decode(
        handle.clone(voices["Bob"], text, seed=line.seed, max_seconds=0.5), seed=line.seed, flow_steps=1
    )
    torch.testing.assert_close(line.audio, expected, rtol=0, atol=0)
    assert torch.equal(scene.audio, line.audio)


PLAIN = "[Alice] Hello there!\n[Bob] Oh, hi! [Laughter]\n[pause 0.3]\n[Alice] Bye.\n"


def test_changing_one_line_renders_only_that_line(handle, voices, calls):
    first = render_dialogue(handle, voices, PLAIN, seed=5, **FAST)
    assert len(calls) == 3
    calls.clear()
    again = render_dialogue(handle, voices, PLAIN, seed=5, **FAST)
    assert calls == [] and all(r.reused for r in again.lines) and torch.equal(again.audio, first.audio)

    changed = PLAIN.replace("Bye.", "Goodbye, Bob.")
    after = render_dialogue(handle, voices, changed, seed=5, **FAST)
    assert [c[:2] for c in calls] == [("clone", "Goodbye, Bob.")]
    assert [r.reused for r in after.lines] == [True, True, False]
    for old, new in zip(first.lines[:2], after.lines[:2]):
        assert torch.equal(old.audio, new.audio) and (old.start, old.end) == (new.start, new.end)

    # a new voice for Bob re-renders Bob's line only; another flow_steps or seed renders everything
    calls.clear()
    swapped = {"Alice": voices["Alice"], "Bob": voices["Alice"]}
    render_dialogue(handle, swapped, changed, seed=5, **FAST)
    assert [c[:2] for c in calls] == [("clone", "Oh, hi! [Laughter]")]
    calls.clear()
    render_dialogue(handle, voices, changed, seed=6, **FAST)
    assert len(calls) == 3


def test_repeated_lines_get_their_own_seed_and_unload_clears_the_cache(handle, voices, calls):
    scene = render_dialogue(handle, voices, "[Alice] Yes.\n[Bob] No.\n[Alice] Yes.", seed=1, **FAST)
    assert scene.lines[0].seed != scene.lines[2].seed and len(calls) == 3
    assert len(handle.line_cache) == 3
    handle.unload()
    assert len(handle.line_cache) == 0


def test_progress_counts_only_what_is_generated(handle, voices, calls):
    passes = []
    render_dialogue(handle, voices, PLAIN, seed=9, on_pass=lambda i, n: passes.append((i, n)), **FAST)
    assert passes == [(0, 3), (1, 3), (2, 3)]
    passes.clear()
    render_dialogue(
        handle, voices, PLAIN.replace("Bye.", "Later."), seed=9, on_pass=lambda i, n: passes.append((i, n)), **FAST
    )
    assert passes == [(0, 1)]


def test_errors_name_the_line(handle, voices, calls):
    with pytest.raises(
        InputError,
        match=r"^script line 2: speaker 'Carol' has no voice \(voices: Alice, Bob\); "
        r"add --voice Carol=FILE:TRANSCRIPT, or use one of those names$",
    ):
        render_dialogue(
            handle, voices, "[Alice] Hi.\n[Carol] Hello.", how_to_add=lambda n: f"add --voice {n}=FILE:TRANSCRIPT"
        )
    with pytest.raises(InputError, match="input 'pause' must be between 0 and 60"):
        render_dialogue(handle, voices, "[Alice] Hi.", pause=-1.0)
    mute = handle.encode(voices["Alice"].audio, voices["Alice"].sample_rate, "")
    with pytest.raises(InputError, match="the voice of 'Alice' has no transcript"):
        render_dialogue(handle, {"Alice": mute}, "[Alice] Hi.")
    with pytest.raises(InputError, match=r"^input 'max_seconds' must be above 0"):
        render_dialogue(handle, voices, "[Alice] Hi.\n[Bob] Hello.", max_seconds=500.0)
    assert calls == []  # all of these fail before any generation


def test_an_error_while_generating_names_the_line(handle, voices, monkeypatch):
    clone = handle.clone

    def fails_for_bob(prompt, text, **kw):
        if prompt is voices["Bob"]:
            raise InputError("the model produced no audio tokens; try another seed or check the inputs")
        return clone(prompt, text, **kw)

    monkeypatch.setattr(handle, "clone", fails_for_bob)
    with pytest.raises(InputError, match=r"^script line 3 \(Bob\): the model produced no audio tokens"):
        render_dialogue(handle, voices, "[Alice] Hi.\n\n[Bob] Hello.", **FAST)


def test_a_parsed_script_and_odd_arguments_are_checked_too(handle, voices, calls):
    script = parse_script("[Alice] Hi.\n[Zed] Hey.")
    with pytest.raises(InputError, match=r"^script line 2: speaker 'Zed' has no voice \(voices: Alice, Bob\)$"):
        render_dialogue(handle, voices, script)
    with pytest.raises(InputError, match="input 'seed' must be a whole number"):
        render_dialogue(handle, voices, "[Alice] Hi.", seed="7")
    with pytest.raises(InputError, match="input 'flow_steps' must be between 1 and 100"):
        render_dialogue(handle, voices, "[Alice] Hi.", flow_steps=0)
    assert calls == []
