"""python -m stepaudio_core dialogue: voices from files, a script file, the scene, SRT and per-line WAVs."""

import subprocess
import sys

import pytest
import soundfile as sf

from stepaudio_core.cli import main
from stepaudio_core.dialogue import instruction_names
from stepaudio_core.edits import PARALINGUISTIC_TAGS
from tests.conftest import FIXTURES, ROOT

ALICE = f"Alice={FIXTURES / 'audio' / 'en2_24k.wav'}:Please call Stella and bring the things."


@pytest.fixture
def bob_wav(tmp_path):
    # a path with a ':' in a folder name: the transcript starts after the ':' that ends an existing file
    path = tmp_path / "take:2" / "bob.wav"
    path.parent.mkdir()
    data, sr = sf.read(FIXTURES / "audio" / "en1_24k.wav")
    sf.write(path, data[: 2 * sr], sr)
    return path


def test_dialogue_writes_the_scene_subtitles_and_lines(tiny_bundle, tmp_path, bob_wav, capsys):
    script = tmp_path / "scene.txt"
    script.write_text("[Alice] Hello there!\n[pause 0.25]\n[Bob] Oh: hi!\n", encoding="utf-8")
    out, srt = tmp_path / "out" / "scene.wav", tmp_path / "out" / "scene.srt"
    rc = main(
        [
            "dialogue",
            "--models",
            str(tiny_bundle),
            "--voice",
            ALICE,
            "--voice",
            f"Bob={bob_wav}:It was sunny.",
            "--script",
            str(script),
            "--out",
            str(out),
            "--srt",
            str(srt),
            "--lines-dir",
            str(tmp_path / "lines"),
            "--max-seconds",
            "0.5",
            "--flow-steps",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    data, sr = sf.read(out)
    lines = sorted((tmp_path / "lines").iterdir())
    assert [p.name for p in lines] == ["001_Alice.wav", "002_Bob.wav"]
    first, second = (sf.read(p)[0] for p in lines)
    assert sr == 24000 and len(data) == len(first) + 6000 + len(second)
    text = srt.read_text(encoding="utf-8")
    assert text.startswith("1\n00:00:00,000 --> ") and "\nAlice: Hello there!\n" in text and "\nBob: Oh: hi!\n" in text
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("voice", "script", "message"),
    [
        ("Alice", "[Alice] Hi.", "--voice 'Alice': write NAME=FILE:TRANSCRIPT"),
        ("Alice=missing.wav:Hi", "[Alice] Hi.", "--voice Alice=missing.wav:Hi names no file that exists"),
        (f"Alice={FIXTURES / 'audio' / 'en2_24k.wav'}", "[Alice] Hi.", "has no transcript: add :TRANSCRIPT"),
        (
            ALICE,
            "[Alice] Hi.\n[Bob] Hello.",
            "script line 2: speaker 'Bob' has no voice (voices: Alice); add --voice "
            "Bob=FILE:TRANSCRIPT, or use one of those names",
        ),
        (ALICE, "[Alice|sleepy] Hi.", "script line 1: unknown instruction 'sleepy'"),
        (ALICE, "\n# nothing\n", "the script has no lines to speak"),
        (ALICE, "[Alice] [Laughter]", "script line 1: the line is only [Laughter], with no words"),
    ],
)
def test_errors_are_one_line(tiny_bundle, tmp_path, capsys, voice, script, message):
    path = tmp_path / "s.txt"
    path.write_text(script, encoding="utf-8")
    rc = main(
        [
            "dialogue",
            "--models",
            str(tiny_bundle),
            "--voice",
            voice,
            "--script",
            str(path),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "x.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.wav").exists()


def test_unreadable_script(tiny_bundle, tmp_path, capsys):
    bad = tmp_path / "s.txt"
    bad.write_bytes(b"\xff\xfe\x00[")
    rc = main(
        [
            "dialogue",
            "--models",
            str(tiny_bundle),
            "--voice",
            ALICE,
            "--script",
            str(bad),
            "--out",
            str(tmp_path / "x.wav"),
        ]
    )
    assert rc == 2 and "--script: cannot read" in capsys.readouterr().err


def test_help_lists_every_instruction_and_tag():
    out = subprocess.run(
        [sys.executable, "-m", "stepaudio_core", "dialogue", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    ).stdout
    flat = " ".join(out.split())
    for name in [*instruction_names(), *PARALINGUISTIC_TAGS]:
        assert name in flat, name
    for flag in ("--models", "--voice", "--script", "--out", "--srt", "--lines-dir", "--pause", "--seed"):
        assert flag in out
