"""The command line checks everything it can before loading a model, in its own words (flags, not node inputs)."""

import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from stepaudio_core import budgets, limits
from stepaudio_core.cli import main
from stepaudio_core.cli_inputs import wav_shortfall
from stepaudio_core.errors import InputError
from stepaudio_core.longform import split_text
from stepaudio_core.validate import check_edit_request, check_passes, text_input
from stepaudio_core.vocabulary import CLI, NODES, render
from tests.conftest import FIXTURES, ROOT

REF = str(FIXTURES / "audio" / "en2_24k.wav")


def _args(command, models, out, *extra):
    return [
        command,
        "--models",
        str(models),
        "--prompt-audio",
        REF,
        "--prompt-text",
        "Please call Stella.",
        "--out",
        str(out),
        *extra,
    ]


def _edit(models, out, *extra):
    return _args("edit", models, out, *extra)


def _clone(models, out, *extra):
    return _args("clone", models, out, *extra)


@pytest.mark.parametrize(
    "make_out, says",
    [
        (lambda d: d, "is a folder"),
        (lambda d: d / "result", "has no extension"),
        (lambda d: d / "result.wma", "unknown extension '.wma'"),
        (lambda d: d / "file.txt" / "result.wav", "is a file, not a folder"),
    ],
)
def test_bad_out_fails_before_anything_is_read(tmp_path, capsys, make_out, says):
    (tmp_path / "file.txt").write_text("x")
    rc = main(_edit(tmp_path, make_out(tmp_path), "--edit-type", "denoise"))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --out ") and says in err and err.count("\n") == 1


def _unwritable_out(tmp_path):
    """An output path in a folder this process cannot write: read-only bits, or (for root) a file as folder."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()  # root ignores permission bits
    except PermissionError:
        return folder / "x.wav"
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "file.txt" / "x.wav"


def test_unwritable_out_fails_fast_without_loading_torch(tmp_path):
    """The issue's case: exit 2 in under 2 s, and no model (not even torch) loaded."""
    out = _unwritable_out(tmp_path)
    code = (
        "import sys; from stepaudio_core.cli import main; rc = main(sys.argv[1:]); "
        "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)"
    )
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", code, *_edit(tmp_path, out, "--edit-type", "denoise")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    (tmp_path / "locked").chmod(0o755)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: --out ") and run.stdout.strip() == "no torch"
    assert elapsed < 2.0, elapsed


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--edit-type", "denoise", "--n-iter", str(limits.MAX_EDIT_PASSES + 1)], "--n-iter"),
        (["--edit-type", "denoise", "--n-iter", "0"], "--n-iter"),
        (["--edit-type", "denoise", "--seed", "-1"], "--seed"),
        (["--edit-type", "emotion", "--edit-info", "sleepy"], "--edit-info"),
        (["--edit-type", "emotion"], "--edit-info"),
        (["--edit-type", "paralinguistic", "--text", "  "], "--text"),
    ],
)
def test_edit_messages_name_the_flag(tmp_path, capsys, extra, flag):
    rc = main(_edit(tmp_path, tmp_path / "x.wav", *extra))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and flag in err and "input '" not in err, err


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--text", " "], "--text"),
        (["--text", "Hi.", "--temperature", "9"], "--temperature"),
        (["--text", "Hi.", "--max-seconds", "0"], "--max-seconds"),
        (["--text", "Hi.", "--seed", str(2**63)], "--seed"),
    ],
)
def test_clone_messages_name_the_flag(tmp_path, capsys, extra, flag):
    rc = main(_clone(tmp_path, tmp_path / "x.wav", *extra))
    err = capsys.readouterr().err
    assert rc == 2 and flag in err and "input '" not in err, err


def test_edit_without_transcript_names_prompt_text(tmp_path, capsys):
    rc = main(
        [
            "edit",
            "--models",
            str(tmp_path),
            "--prompt-audio",
            REF,
            "--edit-type",
            "emotion",
            "--edit-info",
            "happy",
            "--out",
            str(tmp_path / "x.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "give it with --prompt-text" in err and "Encode" not in err


def test_missing_recording_says_not_found(tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    rc = main(
        [
            "edit",
            "--models",
            str(tmp_path),
            "--prompt-audio",
            str(missing),
            "--edit-type",
            "denoise",
            "--out",
            str(tmp_path / "x.wav"),
        ]
    )
    assert rc == 2 and capsys.readouterr().err == f"error: --prompt-audio: file not found: {missing}\n"


def test_flags_that_do_not_apply_are_named(tmp_path, capsys):
    # the empty --models folder stops the run after the checks: no model is needed to see the warnings
    main(_edit(tmp_path, tmp_path / "x.wav", "--edit-type", "vad", "--edit-info", "happy"))
    assert "warning: --edit-info 'happy' does not apply to the vad edit" in capsys.readouterr().err
    main(_edit(tmp_path, tmp_path / "x.wav", "--edit-type", "emotion", "--edit-info", "sad", "--text", "Hi [Sigh]"))
    assert "warning: --text applies only to the paralinguistic edit, not to emotion" in capsys.readouterr().err


def test_long_text_shows_an_estimate_before_it_starts(tmp_path, capsys):
    text = "This is one more sentence to say. " * 600  # the 20,000 characters
    rc = main(_clone(tmp_path, tmp_path / "x.wav", "--text", text))
    err = capsys.readouterr().err
    assert rc == 2  # the empty --models folder
    n = len(split_text(text))
    minutes = sum(budgets.speech_seconds(p) for p in split_text(text)) / 60
    assert f"warning: --text ({len(text.strip())} characters) is about {minutes:.0f} min of speech in {n} pieces" in err
    bound = sum(budgets.clone_seconds(p) for p in split_text(text)) / 60
    assert f"clone: {n} pieces, about {minutes:.0f} min of speech (at most {bound:.0f} min)" in err
    assert err.index("warning: --text") < err.index("error: ")  # said before the models were looked at


def _truncated_wav(path, seconds_kept=0.5, seconds=1.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - int((seconds - seconds_kept) * sr) * 2])


def test_truncated_wav_warns_with_numbers(tmp_path, capsys):
    wav = tmp_path / "cut.wav"
    _truncated_wav(wav)
    assert wav_shortfall(wav) == (32000, 16000)
    main(
        [
            "edit",
            "--models",
            str(tmp_path),
            "--prompt-audio",
            str(wav),
            "--edit-type",
            "denoise",
            "--out",
            str(tmp_path / "x.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert f"warning: --prompt-audio {wav} is cut short: its header says 32000 bytes" in err
    assert "holds 16000 (50%); using the 0.50 s present" in err


def test_whole_and_streamed_wavs_do_not_warn(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(1600, np.float32), 16000)
    assert wav_shortfall(whole) is None
    streamed = tmp_path / "streamed.wav"  # a writer that did not know the length writes 0xFFFFFFFF
    data = bytearray(whole.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", 0xFFFFFFFF)
    streamed.write_bytes(bytes(data))
    assert wav_shortfall(streamed) is None


def test_one_message_two_vocabularies():
    with pytest.raises(InputError) as e:
        check_edit_request("paralinguistic", None, "hello", "")
    assert str(e.value).startswith("input 'new_text' is empty")  # the nodes' wording, as before
    assert render(e.value, CLI).startswith("--text is empty")
    with pytest.raises(InputError) as e:
        check_edit_request("emotion", "happy", "", None)
    assert str(e.value).endswith("write it in the Encode transcript")
    assert render(e.value, CLI).endswith("give it with --prompt-text")
    with pytest.raises(InputError) as e:
        text_input(3, "transcript")
    assert (str(e.value), render(e.value, CLI)) == (
        "input 'transcript' must be text, not int",
        "--prompt-text must be text, not int",
    )
    assert set(NODES.phrases) == set(CLI.phrases)  # every phrase exists in both wordings


def test_node_widgets_take_the_library_limits(pack):
    """One set of limits: what a node's widget offers is what the library and the CLI accept."""
    n = pack.nodes
    widgets = {
        (node.__name__, i.id): i
        for node in (
            n.clone.StepAudioClone,
            n.edit.StepAudioEdit,
            n.decode.StepAudioDecode,
            n.iterate.StepAudioEditIterate,
            n.dialogue.StepAudioDialogue,
        )
        for i in node.define_schema().inputs
    }
    for node in ("StepAudioClone", "StepAudioEdit", "StepAudioDecode", "StepAudioDialogue"):
        assert (widgets[node, "seed"].min, widgets[node, "seed"].max) == (limits.SEED_MIN, limits.SEED_MAX)
    assert widgets["StepAudioEditIterate", "iterations"].max == limits.MAX_EDIT_PASSES
    assert check_passes(limits.MAX_EDIT_PASSES) == limits.MAX_EDIT_PASSES  # the widget's top is accepted...
    with pytest.raises(InputError, match=f"between 1 and {limits.MAX_EDIT_PASSES}; got {limits.MAX_EDIT_PASSES + 1}"):
        check_passes(limits.MAX_EDIT_PASSES + 1)  # ...and one more is not, by the library either


@pytest.mark.parametrize("command", ["clone", "edit"])
def test_help_lists_tags_limits_naming_and_an_example(capsys, command):
    from stepaudio_core.edits import LANGUAGE_TAGS, PARALINGUISTIC_TAGS

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert f"example: python -m stepaudio_core {command} --models" in flat
    assert "the format follows the extension: .wav" in flat and f"{limits.SEED_MIN} to 2^63-1" in flat
    if command == "clone":
        assert all(tag in flat for tag in LANGUAGE_TAGS)
        assert f"{limits.MIN_TEMPERATURE} to {limits.MAX_TEMPERATURE}" in flat
    else:
        assert all(tag in flat for tag in PARALINGUISTIC_TAGS)
        assert f"1 to {limits.MAX_EDIT_PASSES}" in flat and "out.wav -> out_iter1.wav ... out_iterN.wav" in flat


def test_version(capsys):
    from stepaudio_core import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"python -m stepaudio_core {__version__}"


def _dialogue(tmp_path, *extra):
    script = tmp_path / "scene.txt"
    script.write_text("[Ann] Hello there.\n", encoding="utf-8")
    voice = f"Ann={REF}:Please call Stella."
    return ["dialogue", "--models", str(tmp_path), "--voice", voice, "--script", str(script), *extra]


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--out", "{d}/x.wav", "--pause", "90"], "--pause must be between 0 and 60 seconds"),
        (["--out", "{d}/x.wav", "--flow-steps", "0"], "--flow-steps must be between"),
        (["--out", "{d}/x.wav", "--seed", "-5"], "--seed must lie between 0"),
        (["--out", "{d}"], "--out {d} is a folder"),
        (["--out", "{d}/x.wav", "--srt", "{d}/file.txt/x.srt"], "--srt {d}/file.txt/x.srt: {d}/file.txt is a file"),
    ],
)
def test_dialogue_checks_flags_and_outputs_first(tmp_path, capsys, extra, says):
    (tmp_path / "file.txt").write_text("x")
    rc = main(_dialogue(tmp_path, *[e.format(d=tmp_path) for e in extra]))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {says.format(d=tmp_path)}"), err
