"""Dialogue scripts without a model: parsing, instructions, pauses, errors, per-line seeds and SRT text."""

import re

import pytest

from stepaudio_core.dialogue import Instruction, instruction_names, line_seed, parse_script
from stepaudio_core.edits import EDIT_TYPES, LANGUAGE_TAGS, PARALINGUISTIC_TAGS
from stepaudio_core.errors import InputError
from stepaudio_core.limits import MAX_PAUSE_SECONDS
from stepaudio_core.subtitles import Cue, srt_time, to_srt
from tests.conftest import ROOT

VOICES = ["Alice", "Bob", "小明"]


def test_speakers_instructions_and_text():
    script = parse_script(
        "[Alice] Hello there!\n"
        "[Bob|happy] Oh, hi! [Laughter]\n"
        "[alice | Whisper ] Not so loud.\n"
        "[BOB|style:remove] Plain again.\n"
        "[Alice|more faster] Quick!\n"
        "[Bob|act coy] Hehe.\n"
        "[Alice|Cantonese|sad] 唔好意思。\n"
        "[Bob|English] Back to English.\n",
        VOICES,
    )
    got = [(ln.number, ln.speaker, ln.instruction, ln.language, ln.text) for ln in script.lines]
    assert got == [
        (1, "Alice", None, None, "Hello there!"),
        (2, "Bob", Instruction("emotion", "happy"), None, "Oh, hi! [Laughter]"),
        (3, "Alice", Instruction("style", "whisper"), None, "Not so loud."),
        (4, "Bob", Instruction("style", "remove"), None, "Plain again."),
        (5, "Alice", Instruction("speed", "more faster"), None, "Quick!"),
        (6, "Bob", Instruction("style", "act_coy"), None, "Hehe."),
        (7, "Alice", Instruction("emotion", "sad"), "Cantonese", "唔好意思。"),
        (8, "Bob", None, None, "Back to English."),
    ]
    assert script.lines[6].label == "[Alice|Cantonese|emotion:sad]"


def test_blank_and_comment_lines_keep_line_numbers():
    script = parse_script("\n# the scene opens\n   \n[Alice] One.\n  # aside\n\n[Bob] Two.\n", VOICES)
    assert [(ln.number, ln.text) for ln in script.lines] == [(4, "One."), (7, "Two.")]
    assert all(ln.pause_before is None for ln in script.lines)


def test_cjk_brackets_bar_colon_and_punctuation():
    script = parse_script(
        "【小明｜happy】你好！今天天气不错，我们去公园吧。\n［Bob｜style：whisper］好的；走吧……\n", VOICES
    )
    (a, b) = script.lines
    assert (a.speaker, a.instruction, a.text) == (
        "小明",
        Instruction("emotion", "happy"),
        "你好！今天天气不错，我们去公园吧。",
    )
    assert (b.speaker, b.instruction, b.text) == ("Bob", Instruction("style", "whisper"), "好的；走吧……")


def test_pauses_on_their_own_line_and_at_either_end_of_a_line():
    script = parse_script(
        "[pause 0.25]\n[Alice] One. [pause 1]\n[Bob] Two.\n[pause 2s]\n[PAUSE 500ms]\n[Alice] [pause .5] Three.\n"
        "[Bob] Four.\n[pause 3]\n",
        VOICES,
    )
    assert [ln.pause_before for ln in script.lines] == [0.25, 1.0, 3.0, None]
    assert script.pause_after == 3.0


def test_speaker_names_match_the_voices_in_any_case_and_are_reported_as_given():
    script = parse_script("[ALICE] a\n[bob] b\n", ["alice", "Bob"])
    assert [ln.speaker for ln in script.lines] == ["alice", "Bob"]
    # without voices, names are kept as written (for tools that only read scripts)
    assert [ln.speaker for ln in parse_script("[Zed] z\n").lines] == ["Zed"]


def test_every_instruction_of_the_registry_is_accepted():
    names = instruction_names()
    for kind in ("emotion", "style", "speed"):
        for option in EDIT_TYPES[kind].options:
            word = f"{kind}:{option}"
            assert parse_script(f"[Alice|{word}] Hi.", VOICES).lines[0].instruction == Instruction(kind, option)
            assert word in names or option in names
    for language in LANGUAGE_TAGS:
        assert language in names
        assert parse_script(f"[Alice|{language.lower()}] Hi.", VOICES).lines[0].language == language
    assert "emotion:remove" in names and "style:remove" in names and "remove" not in names


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("", r"^the script has no lines to speak"),
        ("# only a comment\n\n", r"^the script has no lines to speak"),
        (
            "[Alice] Hi.\n[Carol] Hello.",
            r"^script line 2: speaker 'Carol' has no voice \(voices: Alice, Bob, 小明\); "
            r"give Carol a voice",
        ),
        ("[Alice] Hi.\n\n[Bob|sleepy] Yawn.", r"^script line 3: unknown instruction 'sleepy'"),
        ("[Bob|hapy] Hi.", r"^script line 1: unknown instruction 'hapy'\. Did you mean 'happy'\?"),
        (
            "[Bob|remove] Hi.",
            r"^script line 1: 'remove' is an option of emotion and style; write which one, "
            r"e.g. 'emotion:remove'",
        ),
        ("[Bob|emotion:whisper] Hi.", r"^script line 1: 'whisper' is not an option of emotion"),
        ("[Bob|denoise:x] Hi.", r"^script line 1: '.*' names the edit type 'denoise'"),
        ("[Bob|happy|sad] Hi.", r"^script line 1: one edit per line"),
        ("[Alice] Hi.\n[Bob] [Laughter]", r"^script line 2: the line is only \[Laughter\], with no words"),
        ("[Bob]  [Sigh] ... [Uhm]!", r"^script line 1: the line is only \[Sigh\] \[Uhm\], with no words"),
        ("[Bob]", r"^script line 1: \[Bob\] has nothing to say"),
        ("[Bob] [pause 1]", r"^script line 1: \[Bob\] has nothing to say"),
        ("Hello there", r"^script line 1 has no speaker: start it with the speaker's name in brackets"),
        ("[Laughter] Hi.", r"^script line 1: \[Laughter\] is a sound tag, not a speaker"),
        ("[|happy] Hi.", r"^script line 1: the brackets name no speaker"),
        ("[Bob] Wait [pause 1] for it.", r"^script line 1: \[pause 1\] sits inside the line"),
        ("[pause 1] [Bob] Hi.", r"^script line 1: \[pause 1\] goes on its own line or after the speaker"),
        (f"[pause {MAX_PAUSE_SECONDS + 1:g}]\n[Bob] Hi.", r"^script line 1: a pause of 61 s is longer than 60 s"),
    ],
)
def test_errors_are_one_line_and_name_the_script_line(script, message):
    with pytest.raises(InputError, match=message) as e:
        parse_script(script, ["Alice", "Bob", "小明"])
    assert "\n" not in str(e.value)


def test_two_voices_with_one_name_are_refused():
    with pytest.raises(InputError, match="two voices are named 'alice'"):
        parse_script("[Alice] Hi.", ["Alice", "alice "])


def test_unknown_inline_tags_are_warned_about(caplog):
    parse_script("[Alice] Oh [Laugh] no. [Laughter] [Cantonese]", VOICES)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith("script line 1: [Laugh] is not one of the model's sound tags")


def test_line_seeds_follow_the_line_not_its_position():
    first = parse_script("[Alice] One.\n[Bob|happy] Two.\n", VOICES).lines
    moved = parse_script("# new\n[Alice] Zero.\n[Bob|happy] Two.\n[Alice] One.\n", VOICES).lines
    assert line_seed(7, first[0]) == line_seed(7, moved[2])
    assert line_seed(7, first[1]) == line_seed(7, moved[1])
    seeds = {
        line_seed(7, first[0]),
        line_seed(8, first[0]),
        line_seed(7, first[0], repeat=1),
        line_seed(7, moved[0]),
        line_seed(7, parse_script("[Alice|happy] One.", VOICES).lines[0]),
        line_seed(7, parse_script("[Bob] One.", VOICES).lines[0]),
    }
    assert len(seeds) == 6  # script seed, repeat, text, instruction and speaker each change it
    assert all(0 <= s < 2**62 for s in seeds)


def test_srt_times_round_to_the_millisecond_without_drift():
    assert srt_time(0, 24000) == "00:00:00,000"
    assert srt_time(11, 24000) == "00:00:00,000" and srt_time(12, 24000) == "00:00:00,001"
    assert srt_time(24000 * 3723 + 12_000, 24000) == "01:02:03,500"
    # ten hours of samples: integer arithmetic stays exact where float seconds would not
    assert srt_time(24000 * 36000 - 1, 24000) == "10:00:00,000"
    text = to_srt([Cue(0, 36_000, "Alice: Hi!"), Cue(48_000, 60_012, "Bob: Two\n\nlines ")], 24000)
    assert text == "1\n00:00:00,000 --> 00:00:01,500\nAlice: Hi!\n\n2\n00:00:02,000 --> 00:00:02,501\nBob: Two\nlines\n"
    assert re.fullmatch(r"(\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+\n(.+\n)?\n?)+", text)


def test_the_node_doc_lists_every_instruction_and_tag():
    doc = (ROOT / "web" / "docs" / "StepAudioDialogue.md").read_text(encoding="utf-8")
    for name in instruction_names():
        assert f"`{name}`" in doc, f"StepAudioDialogue.md does not list the instruction '{name}'"
    for kind in ("emotion", "style", "speed"):
        row = next((line for line in doc.splitlines() if line.startswith(f"| {kind} |")), None)
        assert row is not None, f"StepAudioDialogue.md has no table row for {kind}"
        assert all(option in row for option in EDIT_TYPES[kind].options), kind
    for tag in PARALINGUISTIC_TAGS:
        assert f"`{tag}`" in doc, f"StepAudioDialogue.md does not list the tag {tag}"
    # the example at the top parses
    example = doc.split("```")[1]
    assert len(parse_script(example, ["Alice", "Bob", "Carol"]).lines) == 5


def test_line_cache_is_bounded_by_count_and_bytes():
    import torch

    from stepaudio_core.dialogue import LineCache

    cache = LineCache(max_items=3, max_bytes=4 * 1000 * 4)  # four 1000-sample float32 lines
    for i in range(4):
        cache.put(f"k{i}", torch.full((1000,), float(i)))
    assert len(cache) == 3 and cache.get("k0") is None  # the oldest went first
    assert cache.get("k1") is not None  # ... and a read makes a line recent again
    cache.put("big", torch.zeros(3000))  # 12 kB: only it and the most recent other line fit in 16 kB
    assert [k for k in ("k1", "k2", "k3", "big") if cache.get(k) is not None] == ["k1", "big"]
    cache.put("huge", torch.zeros(10_000))  # bigger than the bound: kept alone, so the line just made is not lost
    assert len(cache) == 1 and cache.get("huge") is not None
    cache.clear()
    assert len(cache) == 0
