"""Audio tokenizer speed at the released dimensions (random weights), seconds per second of audio.

    python bench/tokenizer.py [--seconds 10] [--device auto] [--repeats 1] [--threads 0]

Times the preprocessing (24 kHz -> 16 kHz, normalise, trim), vq02 by the reference's chunk
loop and by the batched layer-major path (50 SAN-M layers, d 512), and vq06 (S3 tokenizer v1,
6 layers, d 1280). Prints a table and one JSON line. It measures; it never fails a build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import (  # noqa: E402
    machine,
    peak_mib,
    print_json,
    print_table,
    random_tokenizer,
    reset_peak,
    set_threads,
    test_signal,
    timed,
)
from stepaudio_core.audio import tokenizer_preprocess  # noqa: E402
from stepaudio_core.device import resolve_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    tokenizer = random_tokenizer(device)
    vq02, vq06 = tokenizer.vq02, tokenizer.vq06

    wav24 = test_signal(args.seconds, 24000)
    t_pre, wav = timed(lambda: tokenizer_preprocess(wav24.to(device), 24000), device, args.repeats)
    audio_s = wav.shape[0] / 16000

    peaks = {}

    def stage(name, fn):
        reset_peak(device)
        out = timed(fn, device, args.repeats)
        peaks[name] = round(peak_mib(device))
        return out

    with torch.inference_mode():
        t_loop, codes_loop = stage("vq02 chunk loop", lambda: vq02(wav, batched=False))
        t_batch, codes_batch = stage("vq02 batched", lambda: vq02(wav, batched=True))
        t_vq06, codes06 = stage("vq06", lambda: vq06(wav))
    agree = (codes_loop == codes_batch).float().mean().item()

    rows = [
        ("preprocess", t_pre),
        ("vq02 chunk loop", t_loop),
        ("vq02 batched", t_batch),
        ("vq06", t_vq06),
        ("total (batched)", t_pre + t_batch + t_vq06),
    ]
    print(f"audio tokenizer at released dimensions, random weights; {machine(device)}")
    print(f"{audio_s:.2f} s of 16 kHz audio, {len(codes_batch)} vq02 + {len(codes06)} vq06 codes; best of "
          f"{args.repeats} after a warm-up call")
    print_table(["stage", "input", "seconds", "s per s audio", "peak MiB"],
                [[name, f"{audio_s:.2f} s", sec, sec / audio_s, peaks.get(name)] for name, sec in rows])
    print(f"vq02 batched / chunk loop speed-up: {t_loop / t_batch:.1f}x; codes agree on {100 * agree:.1f}% of frames")
    print_json({
        "bench": "tokenizer", "device": device.type, "machine": machine(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "audio_seconds": round(audio_s, 3),
        "preprocess_rtf": round(t_pre / audio_s, 4), "vq02_loop_rtf": round(t_loop / audio_s, 4),
        "vq02_batched_rtf": round(t_batch / audio_s, 4), "vq06_rtf": round(t_vq06 / audio_s, 4),
        "vq02_speedup": round(t_loop / t_batch, 2), "vq02_codes_agree": agree, "peak_mib": peaks,
    })


if __name__ == "__main__":
    main()
