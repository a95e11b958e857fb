"""Long runs through the real command (subprocesses on the tiny bundle): Ctrl-C keeps finished passes,
a second run on the same --out cannot mix its files in, and progress in a log comes as whole lines."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import soundfile as sf

from stepaudio_core.cli import main
from tests.conftest import FIXTURES, ROOT

REF = FIXTURES / "audio" / "en2_24k.wav"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # tiny models: one thread is fastest


def _cli(*args):
    return [sys.executable, "-m", "stepaudio_core", *map(str, args)]


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in stream], daemon=True).start()
    return q


def _wait_for(q: queue.Queue, text: str, seen: list, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        seen.append(q.get(timeout=max(0.1, deadline - time.monotonic())))


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_in_pass_2_keeps_pass_1_and_a_second_run_cannot_mix_in(tiny_bundle, tmp_path):
    rec = tmp_path / "in.wav"
    data, sr = sf.read(REF)
    sf.write(rec, data[:sr], sr)
    outdir = tmp_path / "out"
    args = (
        "edit",
        "--models",
        tiny_bundle,
        "--prompt-audio",
        rec,
        "--edit-type",
        "denoise",
        "--device",
        "cpu",
        "--out",
        outdir / "e.wav",
    )
    first = subprocess.Popen(
        _cli(*args, "--n-iter", 3), cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen: list[str] = []
    try:
        _wait_for(_lines(first.stderr), "edit pass 2/3", seen)
        # pass 1 is on disk before pass 2 starts; a second run with the same --out stops before loading a model
        second = subprocess.run(
            _cli(*args, "--n-iter", 2), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2 and "another run (process" in second.stderr, second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        first.kill()
    log = "".join(seen)
    assert "\r" not in log and "edit pass 1/3\n" in log and "edit pass 1/3: " in log  # whole lines in a log
    assert os.listdir(outdir) == ["e_iter1.wav"]  # no pass 2 or 3, no temporary file, no lock left
    wav, rate = sf.read(outdir / "e_iter1.wav")
    assert rate == 24000 and len(wav) > 0
    assert f"wrote {outdir / 'e_iter1.wav'}" in first.stdout.read()


def test_long_clone_reports_pieces_as_lines(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "c.flac"
    rc = main(
        [
            "clone",
            "--models",
            str(tiny_bundle),
            "--prompt-audio",
            str(REF),
            "--prompt-text",
            "Please call Stella.",
            "--text",
            "A sentence to say. " * 30,
            "--max-seconds",
            "0.3",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and sf.info(out).format == "FLAC"
    assert "\r" not in err
    assert "clone: 2 pieces, about " in err and "clone piece 1/2\n" in err and "clone piece 2/2\n" in err
    assert os.listdir(tmp_path) == ["c.flac"]
