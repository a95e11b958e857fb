"""Audio tokenizer speed at the released dimensions (random weights), seconds per second of audio.

    python bench/tokenizer.py [--seconds 10] [--device auto] [--repeats 1] [--threads 0]

Times the preprocessing (24 kHz -> 16 kHz, normalise, trim), vq02 by the reference's chunk
loop and by the batched layer-major path (50 SAN-M layers, d 512), and vq06 (S3 tokenizer v1,
6 layers, d 1280). Prints a table and one JSON line. It measures; it never fails a build.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from stepaudio_core.audio import tokenizer_preprocess  # noqa: E402
from stepaudio_core.device import resolve_device  # noqa: E402
from stepaudio_core.testing import randomize_  # noqa: E402
from stepaudio_core.tokenizer.frontend import FrontendConfig  # noqa: E402
from stepaudio_core.tokenizer.paraformer import ParaformerConfig  # noqa: E402
from stepaudio_core.tokenizer.s3 import S3Dims, S3Tokenizer  # noqa: E402
from stepaudio_core.tokenizer.vq02 import VQ02Tokenizer  # noqa: E402
from stepaudio_core.tokenizer.vq06 import VQ06Tokenizer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeats):
    fn()  # warm-up: first-call allocations, kernel selection
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)

    cmvn = torch.stack([-12 + 2 * torch.randn(560, generator=gen), 0.3 + 0.05 * torch.rand(560, generator=gen)])
    vq02 = VQ02Tokenizer(ParaformerConfig(), FrontendConfig(), cmvn, torch.randn(1024, 512, generator=gen))
    vq02 = randomize_(vq02, gen).eval().to(device)
    s3 = randomize_(S3Tokenizer(S3Dims()), gen)
    s3.quantizer._codebook.embed.copy_(torch.randn(4096, 1280, generator=gen))
    vq06 = VQ06Tokenizer(s3).eval().to(device)

    # A gliding tone under noise at 24 kHz: no silence for the trim to remove.
    n24 = int(args.seconds * 24000)
    t = torch.arange(n24) / 24000
    wav24 = 0.4 * torch.sin(2 * torch.pi * (150 + 40 * t) * t) + 0.05 * torch.randn(n24, generator=gen)
    t_pre, wav = _timed(lambda: tokenizer_preprocess(wav24.to(device), 24000), device, args.repeats)
    audio_s = wav.shape[0] / 16000

    with torch.inference_mode():
        t_loop, codes_loop = _timed(lambda: vq02(wav, batched=False), device, args.repeats)
        t_batch, codes_batch = _timed(lambda: vq02(wav, batched=True), device, args.repeats)
        t_vq06, codes06 = _timed(lambda: vq06(wav), device, args.repeats)
    agree = (codes_loop == codes_batch).float().mean().item()

    rows = [
        ("preprocess", t_pre),
        ("vq02 chunk loop", t_loop),
        ("vq02 batched", t_batch),
        ("vq06", t_vq06),
        ("total (batched)", t_pre + t_batch + t_vq06),
    ]
    cpu = platform.processor() or platform.machine()
    where = f"{device.type} ({torch.cuda.get_device_name() if device.type == 'cuda' else cpu}, "
    print(f"audio tokenizer at released dimensions, random weights, {where}{torch.get_num_threads()} threads)")
    print(f"torch {torch.__version__}; {audio_s:.2f} s of 16 kHz audio, {len(codes_batch)} vq02 + {len(codes06)} vq06")
    print(f"{'stage':<17}{'seconds':>10}{'s per s audio':>16}")
    for name, sec in rows:
        print(f"{name:<17}{sec:>10.3f}{sec / audio_s:>16.4f}")
    print(f"vq02 batched / chunk loop speed-up: {t_loop / t_batch:.1f}x; codes agree on {100 * agree:.1f}% of frames")
    print(
        json.dumps(
            {
                "bench": "tokenizer",
                "device": device.type,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "audio_seconds": round(audio_s, 3),
                "preprocess_rtf": round(t_pre / audio_s, 4),
                "vq02_loop_rtf": round(t_loop / audio_s, 4),
                "vq02_batched_rtf": round(t_batch / audio_s, 4),
                "vq06_rtf": round(t_vq06 / audio_s, 4),
                "vq02_codes_agree": agree,
            }
        )
    )


if __name__ == "__main__":
    main()
