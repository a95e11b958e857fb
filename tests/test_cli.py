"""The README's main-job command: python -m stepaudio_core clone/edit."""

import subprocess
import sys

import pytest
import soundfile as sf

from stepaudio_core.cli import main
from stepaudio_core.edits import EDIT_TYPES
from tests.conftest import FIXTURES, ROOT

REF = str(FIXTURES / "audio" / "en2_24k.wav")
TEXT = "Please call Stella and bring the things."


def test_clone_writes_24khz_audio(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "clone.wav"
    rc = main(["clone", "--models", str(tiny_bundle), "--prompt-audio", REF, "--prompt-text", TEXT,
               "--text", "Hello there.", "--max-seconds", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    data, sr = sf.read(out)
    assert sr == 24000 and data.ndim == 1 and 0 < len(data) <= 24000 * 1.2


def test_edit_writes_one_file_per_iteration(tiny_bundle, tmp_path):
    wav = tmp_path / "in.wav"
    data, sr = sf.read(REF)
    sf.write(wav, data[: sr], sr)
    rc = main(["edit", "--models", str(tiny_bundle), "--prompt-audio", str(wav), "--edit-type", "denoise",
               "--n-iter", "2", "--device", "cpu", "--out", str(tmp_path / "e.wav")])
    assert rc == 0
    assert (tmp_path / "e_iter1.wav").is_file() and (tmp_path / "e_iter2.wav").is_file()


def test_errors_are_one_line_and_non_zero(tmp_path, capsys):
    rc = main(["clone", "--models", str(tmp_path), "--prompt-audio", REF, "--prompt-text", TEXT,
               "--text", "Hi.", "--out", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_edit_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "stepaudio_core", "edit", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60).stdout
    flat = " ".join(out.split())
    for name, kind in EDIT_TYPES.items():
        assert name in flat
        for option in kind.options:
            assert option in flat, option
    for flag in ("--models", "--prompt-audio", "--prompt-text", "--edit-type", "--edit-info", "--text", "--n-iter",
                 "--seed", "--out", "--device", "--dtype", "--quantization", "--max-piece-seconds"):
        assert flag in out


@pytest.mark.parametrize("args", [["edit", "--edit-type", "emotion", "--edit-info", "sleepy"]])
def test_bad_option_is_reported(tiny_bundle, tmp_path, capsys, args):
    rc = main([args[0], "--models", str(tiny_bundle), "--prompt-audio", REF, "--prompt-text", TEXT, *args[1:],
               "--device", "cpu", "--out", str(tmp_path / "x.wav")])
    assert rc == 2 and "'sleepy' is not an option of edit type 'emotion'" in capsys.readouterr().err
