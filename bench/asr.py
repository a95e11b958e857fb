"""Speech recognition cost at the real Whisper dimensions (random weights): seconds per minute of audio, memory.

    python bench/asr.py [--model turbo|large-v3] [--seconds 30] [--tokens-per-second 3] [--beams 5]
                        [--device auto] [--dtype auto] [--threads 0] [--sizes-only]

Builds whisper-large-v3-turbo (or large-v3) from its published dimensions with transformers' random
initialisation (no weight file), then times what SpeechRecognizer does per 30 s piece: the feature
extractor, ``generate`` with 5-beam search, and the word-timing pass (encoder + one teacher-forced
decoder pass + DTW). Random weights never stop by themselves, so each piece decodes exactly the tokens
real speech has (``--tokens-per-second``, about 3 for English read at 150 words a minute). A piece shorter
than 30 s costs the same encoder work as a full one (Whisper pads to 30 s). Also prints every model's
parameter count, its download size (fp16 safetensors) and its weight memory per dtype. Measures; never fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import machine, peak_mib, print_json, print_table, reset_peak, set_threads, test_signal  # noqa: E402
from stepaudio_core.asr import align  # noqa: E402
from stepaudio_core.device import resolve_device, resolve_dtype  # noqa: E402

# Published dimensions (the Hub's config.json of each model): the same encoder; turbo keeps 4 of 32 decoder layers.
DIMS = {
    "turbo": dict(decoder_layers=4),
    "large-v3": dict(decoder_layers=32),
}
COMMON = dict(
    d_model=1280,
    encoder_layers=32,
    encoder_attention_heads=20,
    decoder_attention_heads=20,
    encoder_ffn_dim=5120,
    decoder_ffn_dim=5120,
    num_mel_bins=128,
    vocab_size=51866,
    max_source_positions=1500,
    max_target_positions=448,
    pad_token_id=50256,
    bos_token_id=50257,
    eos_token_id=50257,
    decoder_start_token_id=50258,
)
NO_TIMESTAMPS, TRANSCRIBE, ENGLISH = 50364, 50360, 50259


def config(name: str):
    from transformers import WhisperConfig

    return WhisperConfig(**COMMON, **DIMS[name])


def parameter_count(name: str) -> int:
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config(name))
    # proj_out is tied to the token embedding: count it once
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("proj_out"))


def random_model(name: str, device: torch.device, dtype: torch.dtype):
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config(name)).eval().to(device, dtype)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=50258,
        eos_token_id=50257,
        pad_token_id=50256,
        max_length=448,
        is_multilingual=True,
        no_timestamps_token_id=NO_TIMESTAMPS,
        lang_to_id={"<|en|>": ENGLISH},
        task_to_id={"transcribe": TRANSCRIBE},
        alignment_heads=[
            [layer, h]
            for layer in range(DIMS[name]["decoder_layers"] // 2, DIMS[name]["decoder_layers"])
            for h in range(20)
        ],
    )
    return model


@torch.inference_mode()
def transcribe_piece(model, extractor, audio: np.ndarray, tokens: int, beams: int) -> dict[str, float]:
    device, dtype = model.device, model.dtype
    t0 = time.perf_counter()
    feats = extractor(audio, sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    t1 = time.perf_counter()
    ids = model.generate(
        input_features=feats.input_features.to(device, dtype),
        attention_mask=feats.attention_mask.to(device),
        num_beams=beams,
        language="en",
        min_new_tokens=tokens,
        max_new_tokens=tokens,
    )[0].tolist()
    t2 = time.perf_counter()
    states = model.get_encoder()(feats.input_features.to(device, dtype)).last_hidden_state
    text = [t for t in ids if t < 50257][:tokens] or [0] * tokens
    seq = [50258, ENGLISH, TRANSCRIBE, NO_TIMESTAMPS] + text + [50257]
    weights = align.cross_attention(model, states, seq, model.generation_config.alignment_heads)[:, 3 : 4 + len(text)]
    align.token_starts(weights.cpu(), min(len(audio) // 320 + 1, 1500), 7)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t3 = time.perf_counter()
    return {"features": t1 - t0, "generate": t2 - t1, "word_timings": t3 - t2}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="turbo", choices=list(DIMS))
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tokens-per-second", type=float, default=3.0)
    p.add_argument("--beams", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="auto: fp16 on a GPU, fp32 on the CPU (as the ASR Loader)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--sizes-only", action="store_true", help="print parameter counts and memory, time nothing")
    args = p.parse_args()
    set_threads(args.threads)

    rows = []
    for name in DIMS:
        n = parameter_count(name)
        rows.append(
            [
                f"whisper-large-v3{'-turbo' if name == 'turbo' else ''}",
                f"{n / 1e6:.0f} M",
                f"{n * 2 / 1e9:.2f} GB",
                f"{n * 2 / 2**30:.2f} GiB",
                f"{n * 4 / 2**30:.2f} GiB",
            ]
        )
    print_table(["model", "parameters", "download (fp16)", "weights fp16/bf16", "weights fp32"], rows)
    if args.sizes_only:
        return

    from transformers import WhisperFeatureExtractor

    device = resolve_device(args.device)
    dtype = (
        torch.float16
        if args.dtype == "auto" and device.type == "cuda"
        else resolve_dtype(args.dtype if args.dtype != "auto" else "fp32", device)
    )
    extractor = WhisperFeatureExtractor(feature_size=128)
    reset_peak(device)
    model = random_model(args.model, device, dtype)
    wav = test_signal(args.seconds, 16000).numpy()
    pieces = [wav[i : i + 480000] for i in range(0, len(wav), 480000)]
    transcribe_piece(model, extractor, pieces[0][:16000], 4, args.beams)  # warm-up: first-call allocations
    totals = {"features": 0.0, "generate": 0.0, "word_timings": 0.0}
    for piece in pieces:
        tokens = max(1, round(args.tokens_per_second * len(piece) / 16000))
        for k, v in transcribe_piece(model, extractor, piece, tokens, args.beams).items():
            totals[k] += v
    total = sum(totals.values())
    per_minute = total * 60 / args.seconds
    print(
        f"\n{machine(device)}, {torch.get_num_threads()} threads, {dtype}, {args.beams} beams, "
        f"{args.tokens_per_second} tokens/s of audio"
    )
    print_table(
        ["stage", "seconds", "s per minute of audio"],
        [[k, v, v * 60 / args.seconds] for k, v in totals.items()] + [["total", total, per_minute]],
    )
    print(f"peak memory {peak_mib(device):.0f} MiB")
    print_json(
        {
            "bench": "asr",
            "model": args.model,
            "device": device.type,
            "dtype": str(dtype),
            "seconds": args.seconds,
            "beams": args.beams,
            "total_s": round(total, 2),
            "s_per_minute": round(per_minute, 2),
            **{f"{k}_s": round(v, 2) for k, v in totals.items()},
            "peak_mib": round(peak_mib(device)),
        }
    )


if __name__ == "__main__":
    main()
