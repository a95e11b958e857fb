"""Output written whole, one lock per --out, and progress that reads well on a terminal and in a log."""

import io
import os

import numpy as np
import pytest
import soundfile as sf

from stepaudio_core.cli_output import OutputLock, check_output, iteration_paths, write_audio
from stepaudio_core.console import CLEAR_LINE, Progress
from stepaudio_core.errors import InputError


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_iteration_names(tmp_path):
    out = check_output(tmp_path / "take.flac")
    assert [p.name for p in iteration_paths(out, 1)] == ["take.flac"]
    assert [p.name for p in iteration_paths(out, 3)] == ["take_iter1.flac", "take_iter2.flac", "take_iter3.flac"]


@pytest.mark.parametrize("ext, fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_format_follows_the_extension_and_no_temporary_file_stays(tmp_path, ext, fmt):
    out = check_output(tmp_path / "new" / f"out{ext}")
    write_audio(out, np.zeros(2400, np.float32), 24000)
    assert sf.info(out).format == fmt and sf.info(out).samplerate == 24000
    assert os.listdir(out.parent) == [out.name]
    if os.name == "posix":  # the result gets the permissions any new file would, not mkstemp's private 0600
        mask = os.umask(0)
        os.umask(mask)
        assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_audio(tmp_path / "x.wav", np.zeros(10, np.float32), 24000)
    assert os.listdir(tmp_path) == []


def test_out_may_not_be_the_input(tmp_path):
    rec = tmp_path / "in.wav"
    sf.write(rec, np.zeros(100, np.float32), 16000)
    with pytest.raises(InputError, match="is the input recording itself"):
        check_output(rec, (rec,))


def test_a_second_run_on_the_same_out_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    out = tmp_path / "x.wav"
    with OutputLock(out):
        with pytest.raises(InputError, match=rf"--out {out}: another run \(process {os.getpid()}\) is writing it"):
            OutputLock(out).__enter__()
    assert os.listdir(tmp_path) == []
    if os.name == "posix":
        stale = OutputLock(out).path
        stale.write_text("999999999")  # beyond any pid: a run that was killed
        with OutputLock(out):
            assert stale.read_text() == str(os.getpid())
        assert not stale.exists()


def test_log_progress_is_whole_lines_at_most_every_few_seconds():
    stream, clock = io.StringIO(), Clock()
    p = Progress("edit", stream, every_seconds=5.0, clock=clock)
    for i in range(2):
        p.pass_(i, 2)
        for done in range(1, 101):
            clock.now += 0.1
            p(done, 400)  # stops early, as a model that emits its end token does
    p.close()
    lines = stream.getvalue().split("\n")
    assert "\r" not in stream.getvalue() and lines[-1] == ""
    assert lines[0] == "edit pass 1/2"
    assert lines[1].startswith("edit pass 1/2: 1/400 tokens")
    assert "edit pass 1/2: 100/400 tokens, 10 s" in lines  # the last count, said when the pass ended
    assert "edit pass 2/2" in lines and lines[-2] == "edit pass 2/2: 100/400 tokens, 20 s"
    assert len(lines) < 12  # 20 s of tokens at one line per 5 s, not one line per token


def test_terminal_progress_redraws_one_line_and_keeps_stage_lines():
    stream, clock = FakeTTY(), Clock()
    p = Progress("clone", stream, clock=clock)
    p.piece(0, 2)
    for done in range(1, 4):
        clock.now += 1
        p(done, 10)
    p.piece(1, 2)
    p.line("wrote x.wav")
    text = stream.getvalue()
    assert text.startswith("clone piece 1/2\n")
    assert f"{CLEAR_LINE}clone piece 1/2: 3/10 tokens, 3 s{CLEAR_LINE}clone piece 2/2\n" in text
    assert text.endswith("clone piece 2/2\nwrote x.wav\n")  # no count drawn since, so nothing to clear
