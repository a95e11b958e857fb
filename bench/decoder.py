"""Decoder speed at the released dimensions (random weights): flow and HiFT, seconds per second of audio.

    python bench/decoder.py [--seconds 10] [--prompt-seconds 3] [--device auto] [--flow-dtype fp32] [--steps 10]

Prints a table and one JSON line. Nothing here is a test: it measures, it never fails a build.
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

from stepaudio_core.decoder.config import DecoderConfig  # noqa: E402
from stepaudio_core.decoder.flow import CausalMaskedDiffWithXvec  # noqa: E402
from stepaudio_core.decoder.hift import HiFTGenerator  # noqa: E402
from stepaudio_core.decoder.token2wav import align_prompt_mel, reshape_mixed_tokens  # noqa: E402
from stepaudio_core.device import resolve_device  # noqa: E402
from stepaudio_core.testing import randomize_  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


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
    ap.add_argument("--seconds", type=float, default=10.0, help="generated audio length")
    ap.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt audio length")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--flow-dtype", choices=DTYPES, default="fp32")
    ap.add_argument("--steps", type=int, default=10, help="flow Euler steps (10 = released)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    cfg = DecoderConfig()
    gen = torch.Generator().manual_seed(0)
    flow = randomize_(CausalMaskedDiffWithXvec(cfg.flow), gen).eval().to(device, DTYPES[args.flow_dtype])
    hift = randomize_(HiFTGenerator(cfg.hift), gen).eval().to(device)

    def mixed(seconds):
        groups = max(1, round(seconds * 25 / 3))
        ids = []
        for _ in range(groups):
            ids += torch.randint(0, 1024, (2,), generator=gen).tolist() + (1024 + torch.randint(0, 4096, (3,), generator=gen)).tolist()
        return ids

    token = reshape_mixed_tokens(mixed(args.seconds))[None].to(device)
    prompt_token = reshape_mixed_tokens(mixed(args.prompt_seconds))[None].to(device)
    prompt_mel = torch.randn(1, int(args.prompt_seconds * 50), 80, generator=gen)
    prompt_feat = align_prompt_mel(prompt_mel, prompt_token.shape[1]).to(device, DTYPES[args.flow_dtype])
    embedding = torch.randn(1, 192, generator=gen).to(device, DTYPES[args.flow_dtype])
    dev_gen = torch.Generator(device=device).manual_seed(0)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_flow, mel = _timed(
        lambda: flow.inference(token, prompt_token, prompt_feat, embedding, n_timesteps=args.steps, generator=dev_gen),
        device, args.repeats,
    )
    t_hift, wav = _timed(lambda: hift.inference(mel.float(), generator=dev_gen)[0], device, args.repeats)
    audio_s = wav.shape[-1] / cfg.hift.sampling_rate

    rows = [("flow", t_flow), ("hift", t_hift), ("decoder total", t_flow + t_hift)]
    where = f"{device.type} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"decoder at released dimensions, random weights, {where}, torch {torch.__version__}")
    print(f"prompt {args.prompt_seconds:.1f} s + generated {audio_s:.2f} s, flow {args.flow_dtype}, {args.steps} steps")
    print(f"{'stage':<15}{'seconds':>10}{'s per s audio':>16}")
    for name, t in rows:
        print(f"{name:<15}{t:>10.3f}{t / audio_s:>16.4f}")
    peak = _peak_mb(device)
    if peak is not None:
        print(f"peak memory: {peak:.0f} MiB")
    print(json.dumps({
        "bench": "decoder", "device": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "audio_seconds": round(audio_s, 3), "prompt_seconds": args.prompt_seconds, "flow_dtype": args.flow_dtype,
        "steps": args.steps, "flow_s": round(t_flow, 4), "hift_s": round(t_hift, 4),
        "flow_rtf": round(t_flow / audio_s, 4), "hift_rtf": round(t_hift / audio_s, 4), "peak_mib": peak,
    }))


if __name__ == "__main__":
    main()
