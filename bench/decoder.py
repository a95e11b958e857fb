"""Decoder speed at the released dimensions (random weights): flow and HiFT, seconds per second of audio.

    python bench/decoder.py [--seconds 10] [--prompt-seconds 3] [--device auto] [--flow-dtype fp32] [--steps 10]

Prints a table and one JSON line. Nothing here is a test: it measures, it never fails a build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import (  # noqa: E402
    DTYPES,
    machine,
    peak_mib,
    print_json,
    print_table,
    random_decoder,
    random_mixed_codes,
    reset_peak,
    set_threads,
    timed,
)
from stepaudio_core.decoder.token2wav import align_prompt_mel, reshape_mixed_tokens  # noqa: E402
from stepaudio_core.device import resolve_device  # noqa: E402


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
    set_threads(args.threads)

    device = resolve_device(args.device)
    dtype = DTYPES[args.flow_dtype]
    decoder = random_decoder(device, flow_dtype=dtype)
    flow, hift, cfg = decoder.flow, decoder.hift, decoder.cfg
    gen = torch.Generator().manual_seed(0)

    token = reshape_mixed_tokens(random_mixed_codes(args.seconds, gen))[None].to(device)
    prompt_token = reshape_mixed_tokens(random_mixed_codes(args.prompt_seconds, gen))[None].to(device)
    prompt_mel = torch.randn(1, int(args.prompt_seconds * 50), 80, generator=gen)
    prompt_feat = align_prompt_mel(prompt_mel, prompt_token.shape[1]).to(device, dtype)
    embedding = torch.randn(1, 192, generator=gen).to(device, dtype)
    dev_gen = torch.Generator(device=device).manual_seed(0)

    reset_peak(device)
    t_flow, mel = timed(
        lambda: flow.inference(token, prompt_token, prompt_feat, embedding, n_timesteps=args.steps, generator=dev_gen),
        device, args.repeats,
    )
    peak_flow = peak_mib(device)
    reset_peak(device)
    t_hift, wav = timed(lambda: hift.inference(mel.float(), generator=dev_gen)[0], device, args.repeats)
    peak_hift = peak_mib(device)
    audio_s = wav.shape[-1] / cfg.hift.sampling_rate

    print(f"decoder at released dimensions, random weights; {machine(device)}")
    print(f"prompt {args.prompt_seconds:.1f} s + generated {audio_s:.2f} s, flow {args.flow_dtype}, {args.steps} steps; "
          f"best of {args.repeats} after a warm-up call")
    rows = [("flow", t_flow, peak_flow), ("hift", t_hift, peak_hift),
            ("decoder total", t_flow + t_hift, max(peak_flow, peak_hift))]
    print_table(["stage", "input", "seconds", "s per s audio", "peak MiB"],
                [[name, f"{audio_s:.2f} s", t, t / audio_s, round(peak)] for name, t, peak in rows])
    print_json({
        "bench": "decoder", "device": device.type, "machine": machine(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "audio_seconds": round(audio_s, 3), "prompt_seconds": args.prompt_seconds,
        "flow_dtype": args.flow_dtype, "steps": args.steps, "flow_s": round(t_flow, 4), "hift_s": round(t_hift, 4),
        "flow_rtf": round(t_flow / audio_s, 4), "hift_rtf": round(t_hift / audio_s, 4),
        "peak_mib": round(max(peak_flow, peak_hift)),
    })


if __name__ == "__main__":
    main()
