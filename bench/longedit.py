"""Long edits at the released dimensions: seconds of compute per minute of edited audio, and peak memory.

    python bench/longedit.py --minutes 1 3 10 [--lm-layers 4] [--flow-steps 10] [--threads 0]

Random weights at the released sizes (``bench/common.py``), built in memory and handed to a
``StepAudioEditX`` whose folder is a tiny bundle (for the file layout and the text tokenizer);
the LM can be shortened with ``--lm-layers`` as in ``bench/pipeline.py``. The recording is a
synthetic voice-like signal: 6 s phrases with 0.6 s pauses, so every cut falls in a pause. The
stop id's ``lm_head`` row is zeroed, so each piece generates exactly ``--piece-budget`` seconds
(default: the longest piece, about what a trained model returns for an emotion edit).

Rows: encode (the whole recording, as the Encode node does: its first 30 s), edit (every piece:
encode, LM), decode (every piece: flow + HiFT, joined with the pauses). "s per min" divides by the
recording's minutes; "peak MiB" is the stage's peak resident memory on the CPU (CUDA: allocated),
weights included, so growth from 1 to 10 minutes is what the recording's length costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import (  # noqa: E402
    load_average,
    machine,
    peak_mib,
    print_json,
    print_table,
    random_decoder,
    random_lm,
    random_tokenizer,
    reset_peak,
    set_threads,
    sync,
    test_signal,
)
from stepaudio_core.lm.text_tokenizer import EOT  # noqa: E402
from stepaudio_core.pipeline import StepAudioEditX  # noqa: E402
from stepaudio_core.testing.bundle import write_tiny_bundle  # noqa: E402

SAMPLE_RATE = 24000


def recording(minutes: float) -> torch.Tensor:
    """6 s phrases, 0.6 s pauses, ``minutes`` long."""
    phrase, pause = test_signal(6.0, SAMPLE_RATE), torch.zeros(int(0.6 * SAMPLE_RATE))
    n = int(minutes * 60 * SAMPLE_RATE)
    reps = n // (phrase.shape[0] + pause.shape[0]) + 1
    wav = torch.cat([torch.cat([phrase, pause])] * reps)[:n]
    return wav + 1e-4 * torch.randn(n, generator=torch.Generator().manual_seed(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lm-layers", type=int, default=None, help="build the LM with this many layers (released: 32)")
    ap.add_argument("--flow-steps", type=int, default=10)
    ap.add_argument("--max-piece-seconds", type=float, default=15.0)
    ap.add_argument("--piece-budget", type=float, default=None, help="seconds each piece generates (default: max piece)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    set_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_bundle(Path(tmp))
        model = StepAudioEditX(tmp, device=args.device, dtype="fp32")
        lm = random_lm(device, torch.float32, layers=args.lm_layers)
        with torch.no_grad():
            lm.lm_head.weight[EOT].zero_()  # random weights never stop by themselves
        # the handle loads a component only when it has none: these stand in for the released files
        model._components.update(tokenizer=random_tokenizer(device), decoder=random_decoder(device), lm=lm)
        budget = args.piece_budget or args.max_piece_seconds
        records = []
        for minutes in args.minutes:
            wav = recording(minutes)
            row = {"minutes": minutes}
            reset_peak(device)
            t = time.perf_counter()
            prompt = model.encode(wav, SAMPLE_RATE, "", cache=False)
            sync(device)
            row["encode_s"], row["encode_peak_mib"] = time.perf_counter() - t, peak_mib(device)
            reset_peak(device)
            t = time.perf_counter()
            tokens = model.edit(prompt, "denoise", seed=0, max_seconds=budget, max_piece_seconds=args.max_piece_seconds)
            sync(device)
            row["edit_s"], row["edit_peak_mib"] = time.perf_counter() - t, peak_mib(device)
            row["pieces"] = len(tokens.parts)
            reset_peak(device)
            t = time.perf_counter()
            out = model.decode(tokens, seed=0, flow_steps=args.flow_steps)
            sync(device)
            row["decode_s"], row["decode_peak_mib"] = time.perf_counter() - t, peak_mib(device)
            row["output_s"] = out.shape[0] / SAMPLE_RATE
            row["s_per_min"] = (row["encode_s"] + row["edit_s"] + row["decode_s"]) / minutes
            print(f"{minutes} min: {row}", file=sys.stderr, flush=True)
            records.append(row)
            del prompt, tokens, out
        header = ["minutes", "pieces", "encode s", "edit s", "decode s", "s per min", "peak MiB (enc/edit/dec)"]
        print_table(header, [
            [r["minutes"], r["pieces"], r["encode_s"], r["edit_s"], r["decode_s"], r["s_per_min"],
             f"{r['encode_peak_mib']:.0f}/{r['edit_peak_mib']:.0f}/{r['decode_peak_mib']:.0f}"]
            for r in records
        ])
        print_json({"bench": "longedit", "machine": machine(device), "load": load_average(),
                    "lm_layers": args.lm_layers or 32, "flow_steps": args.flow_steps, "piece_budget_s": budget,
                    "rows": records})


if __name__ == "__main__":
    main()
