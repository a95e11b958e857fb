"""The whole pipeline at the released dimensions: encode + clone + decode and encode + edit + decode.

    python bench/pipeline.py --seconds 5 10 20 [--device auto] [--dtype auto] [--quantization none]
    python bench/pipeline.py --seconds 5 --lm-layers 4          # a shortened LM, e.g. on a small CPU
    python bench/pipeline.py --seconds 5 --real MODELS_DIR       # the released weights of a model folder

With random weights (the default) every model is built in memory at the released sizes (see
``bench/common.py``); the recording is a synthetic gliding tone of each length, and each clone
or edit generates exactly the tokens of that many seconds of audio: the stop id's ``lm_head``
row is zeroed, so top-k 50 never keeps it and a generation runs to the end of its budget, which
``max_new_tokens_for(seconds)`` sizes as the pipeline does. With ``--real`` the models and the
text tokenizer come from the folder through ``StepAudioEditX``, and the LM stops when it does.

Stages follow ``StepAudioEditX``: encode (tokenizer: resample, trim, vq02, vq06; decoder front
end: prompt mel and CAM++), clone or edit (the LM's prefill of the prompt, then decoding token by
token), decode (flow with 10 Euler steps, then HiFT). "s per s" divides by the recording's length
for encode rows and by the generated audio's length for the others. "peak MiB" is the process's
peak resident memory during the stage on the CPU and ``torch.cuda.max_memory_allocated`` on CUDA,
both including the loaded weights. The LM's KV cache is allocated once per generation, for the
prompt plus the token budget; its size is printed.

Prints one table per length and one JSON line with everything; it measures and never fails on speed.
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
    random_mixed_codes,
    random_tokenizer,
    reset_peak,
    set_threads,
    sync,
    test_signal,
)
from stepaudio_core.audio import prompt_audio  # noqa: E402
from stepaudio_core.codes import TOKENS_PER_SECOND  # noqa: E402
from stepaudio_core.device import resolve_device, resolve_dtype  # noqa: E402
from stepaudio_core.edits import EDIT_TYPES  # noqa: E402
from stepaudio_core.lm.generate import Sampling, generate_audio_codes, max_new_tokens_for  # noqa: E402
from stepaudio_core.lm.prompts import clone_prompt_ids, edit_prompt_ids  # noqa: E402
from stepaudio_core.lm.text_tokenizer import EOT, TextTokenizer  # noqa: E402

SAMPLE_RATE = 24000
WORDS = ("the quick brown fox jumps over the lazy dog while seven bright stars rise above the quiet harbour "
         "and a small boat drifts toward the shore").split()


def words(seconds: float) -> str:
    """About as much English as a speaker says in ``seconds`` (2.5 words per second)."""
    n = max(3, round(2.5 * seconds))
    return " ".join(WORDS[i % len(WORDS)] for i in range(n)).capitalize() + "."


class Stopwatch:
    """Times ``fn`` with the device synchronised, and its peak memory."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, fn, *args, **kwargs):
        reset_peak(self.device)
        sync(self.device)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        sync(self.device)
        return out, time.perf_counter() - start, peak_mib(self.device)


class LMProbe:
    """Records the LM's prefill time and KV-cache capacity while ``generate_audio_codes`` runs."""

    def __init__(self, lm, device: torch.device):
        self.lm, self.device = lm, device
        self.prefill_s, self.capacity, self.prompt_tokens = 0.0, 0, 0

    def __enter__(self):
        prefill, new_cache = self.lm.prefill, self.lm.new_cache

        def timed_prefill(ids, cache, *args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = prefill(ids, cache, *args, **kwargs)
            sync(self.device)
            self.prefill_s, self.prompt_tokens = time.perf_counter() - start, ids.shape[1]
            return out

        def sized_cache(capacity, *args, **kwargs):
            self.capacity = capacity
            return new_cache(capacity, *args, **kwargs)

        self.lm.prefill, self.lm.new_cache = timed_prefill, sized_cache  # instance attributes shadow the methods
        return self

    def __exit__(self, *exc):
        del self.lm.prefill, self.lm.new_cache


class EnoughTokens(Exception):
    """Raised from the token callback to end a generation early (--lm-tokens): the pipeline's cancel path."""


def generate(lm, prompt_ids: list[int], budget: int, args) -> tuple[list[int] | None, int]:
    """(codes, ids drawn); codes is None when --lm-tokens ended the generation before its budget.

    The budget, and so the KV cache, is always the whole request's: an early end only skips steps.
    """
    drawn = 0

    def count(n: int, total: int) -> None:
        nonlocal drawn
        drawn = n
        if args.lm_tokens and n >= args.lm_tokens and n < total:
            raise EnoughTokens

    generator = torch.Generator(device=lm.device).manual_seed(args.seed)
    try:
        codes = generate_audio_codes(
            lm, prompt_ids, budget, Sampling(), generator, count, check_every=args.check_every,
            decode_step=args.decode_step,
        )
    except EnoughTokens:
        return None, drawn
    return codes, drawn


def kv_cache_mib(lm, capacity: int) -> float:
    cfg = lm.config
    element = 2 if lm.model.embed_tokens.weight.dtype in (torch.bfloat16, torch.float16) else 4
    return 2 * cfg.num_hidden_layers * cfg.num_attention_groups * cfg.head_dim * capacity * element / 2**20


def build_random(args, device: torch.device, dtype: torch.dtype, workdir: Path):
    from stepaudio_core.testing.lm import tiny_sentencepiece_model

    tokenizer = random_tokenizer(device)
    decoder = random_decoder(device)
    if args.quantization == "none":
        lm = random_lm(device, dtype, layers=args.lm_layers)
    else:
        from stepaudio_core.lm.load import quantize_

        lm = quantize_(random_lm(torch.device("cpu"), dtype, layers=args.lm_layers), args.quantization, device, dtype)
    with torch.no_grad():
        lm.lm_head.weight[EOT].zero_()  # random weights never stop by themselves: the stop id can never win top-k
    path = args.text_tokenizer
    if path is None:
        # the release's id layout (specials, <audio_N> pieces) with a tiny text vocabulary: text takes more ids
        path = workdir / "tokenizer.model"
        path.write_bytes(tiny_sentencepiece_model())
    return tokenizer, decoder, lm, TextTokenizer(path)


def build_real(args, device: torch.device):
    from stepaudio_core.pipeline import StepAudioEditX

    handle = StepAudioEditX(args.real, device=str(device), dtype=args.dtype, quantization=args.quantization)
    return handle.components.tokenizer, handle.components.decoder, handle.components.lm, handle.components.text_tokenizer


def run_length(seconds: float, models, device: torch.device, args) -> list[dict]:
    """All stages for a recording of ``seconds``: encode once, then clone and edit, each decoded."""
    tokenizer, decoder, lm, text_tok = models
    watch = Stopwatch(device)
    wav = prompt_audio(test_signal(seconds, SAMPLE_RATE))  # mono, peak capped, as StepAudioEditX.encode feeds it
    transcript = words(seconds)
    rows = []

    def row(stage, size, secs, audio_s, peak, **extra):
        rows.append({"seconds_audio": seconds, "stage": stage, "input": size, "s": round(secs, 4),
                     "s_per_s": round(secs / audio_s, 4) if audio_s else None, "peak_mib": round(peak), **extra})

    with torch.inference_mode():
        codes, t, peak = watch(tokenizer.encode, wav.to(device), SAMPLE_RATE)
        row("encode: tokens (vq02+vq06)", f"{seconds:g} s audio", t, seconds, peak)
        (mel, speaker), t, peak = watch(decoder.prompt_features, wav, SAMPLE_RATE)
        row("encode: prompt mel + CAM++", f"{seconds:g} s audio", t, seconds, peak)
        prompt_codes = codes.mixed()
        jobs = {
            "clone": clone_prompt_ids(text_tok, "debug", transcript, prompt_codes, words(seconds)),
            "edit": edit_prompt_ids(text_tok, EDIT_TYPES["emotion"], "happy", transcript, prompt_codes),
        }
        for job in args.jobs:
            budget = max_new_tokens_for(seconds)
            planned = budget - 1  # the codes of `seconds` of audio; the last id (the stop) is dropped
            with LMProbe(lm, device) as probe:
                (new, n), t, peak = watch(generate, lm, jobs[job], budget, args)
            audio_s = n / TOKENS_PER_SECOND
            decode_s = t - probe.prefill_s
            cache = f"KV cache {probe.capacity} tokens = {kv_cache_mib(lm, probe.capacity):.0f} MiB"
            # the prefill serves the whole request: per second of the audio asked for
            row(f"{job}: LM prefill", f"{probe.prompt_tokens} prompt ids", probe.prefill_s,
                planned / TOKENS_PER_SECOND, peak, kv_cache_tokens=probe.capacity)
            label = f"{n} ids drawn" if new is not None else f"{n} of {planned + 1} ids drawn"
            row(f"{job}: LM decode", label, decode_s, audio_s, peak, ms_per_token=round(1000 * decode_s / max(n, 1), 2),
                note=cache)
            if new is None:  # cut short by --lm-tokens: decode random codes of the whole length instead
                new = random_mixed_codes(planned / TOKENS_PER_SECOND, torch.Generator().manual_seed(args.seed))
            out, t, peak = watch(decoder, new, prompt_codes, mel, speaker, seed=args.seed, n_timesteps=args.flow_steps)
            row(f"{job}: decode (flow + HiFT)", f"{len(new)} codes", t, out.shape[-1] / SAMPLE_RATE, peak)
            total = sum(r["s"] for r in rows if r["stage"].startswith(("encode", job)))
            rows.append({"seconds_audio": seconds, "stage": f"{job} total (encode + LM + decode)",
                         "input": f"{out.shape[-1] / SAMPLE_RATE:.2f} s out", "s": round(total, 4),
                         "s_per_s": round(total / (out.shape[-1] / SAMPLE_RATE), 4),
                         "peak_mib": max(r["peak_mib"] for r in rows if r["stage"].startswith(("encode", job)))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0, 20.0], help="recording lengths")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                    help="the LM's dtype (auto: bf16 on CUDA, else fp32); the tokenizer and decoder stay fp32")
    ap.add_argument("--quantization", default="none", choices=("none", "int8", "nf4"),
                    help="bitsandbytes LM layers (CUDA only)")
    ap.add_argument("--lm-layers", type=int, default=None, help="build the LM with this many layers (released: 32)")
    ap.add_argument("--lm-tokens", type=int, default=0,
                    help="end each generation after this many tokens (0: the whole length); the KV cache is still "
                         "sized for the whole request, and the decoder then decodes random codes of the whole length")
    ap.add_argument("--jobs", nargs="+", default=["clone", "edit"], choices=("clone", "edit"))
    ap.add_argument("--check-every", type=int, default=None,
                    help="LM tokens decoded between reads of the new ids (default: 8 on CUDA, 1 elsewhere; "
                         "1 is the plain per-token loop)")
    ap.add_argument("--decode-step", default="plain", choices=("plain", "static", "cuda_graph"),
                    help="the LM's decode step: plain, static shapes, or static replayed as a CUDA graph (CUDA only)")
    ap.add_argument("--flow-steps", type=int, default=10)
    ap.add_argument("--real", type=Path, default=None, help="a model folder: use its released weights")
    ap.add_argument("--text-tokenizer", type=Path, default=None,
                    help="the release's tokenizer.model, for prompts of the real length with random weights "
                         "(default: a tiny stand-in, whose text takes more ids)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed 1 s run that warms every stage up")
    args = ap.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.quantization != "none" and device.type != "cuda":
        raise SystemExit("--quantization needs a CUDA device (bitsandbytes)")
    if args.real is not None and args.lm_layers is not None:
        raise SystemExit("--lm-layers builds a random LM; it cannot shorten the released one (--real)")

    reset_peak(device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        models = build_real(args, device) if args.real else build_random(args, device, dtype, Path(workdir))
    sync(device)
    build_s, resident = time.perf_counter() - start, peak_mib(device)
    lm = models[2]
    layers = lm.config.num_hidden_layers
    quant = "" if args.quantization == "none" else f", {args.quantization} layers"
    if args.real:
        head, lm_desc = f"pipeline with the weights in {args.real}", f"LM {layers} layers"
    else:
        head = "pipeline at the released dimensions, random weights"
        lm_desc = f"LM {layers} of 32 layers" if layers != 32 else "LM 32 layers (full depth)"
    print(f"{head}; {lm_desc}, {str(lm.model.embed_tokens.weight.dtype).removeprefix('torch.')}{quant}; "
          f"tokenizer and decoder fp32; {args.flow_steps} flow steps")
    print(f"{machine(device)}; LM ids read back every {args.check_every or 'default'} token(s), "
          f"{args.decode_step} decode step")
    if args.real is None and args.text_tokenizer is None:
        print("text tokenizer: a tiny stand-in with the release's ids (text parts of prompts come out longer)")
    print(f"models ready in {build_s:.1f} s, peak memory while building {resident:.0f} MiB")
    if not args.no_warmup:
        warm = argparse.Namespace(**{**vars(args), "lm_tokens": 5})
        run_length(1.0, models, device, warm)
    all_rows = []
    for seconds in args.seconds:
        rows = run_length(seconds, models, device, args)
        all_rows += rows
        print(f"\n{seconds:g} s recording (load average {load_average()})")
        print_table(
            ["stage", "input", "seconds", "s per s audio", "peak MiB", "notes"],
            [[r["stage"], r["input"], r["s"], r["s_per_s"], r["peak_mib"],
              (f"{r['ms_per_token']:.1f} ms/token; {r['note']}" if "ms_per_token" in r else "")] for r in rows],
        )
    print_json({
        "bench": "pipeline", "device": device.type, "device_name": machine(device), "dtype": str(dtype),
        "quantization": args.quantization, "lm_layers": layers, "lm_tokens_cap": args.lm_tokens or None,
        "weights": "real" if args.real else "random", "flow_steps": args.flow_steps, "check_every": args.check_every,
        "decode_step": args.decode_step,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "build_s": round(build_s, 2),
        "build_peak_mib": round(resident), "rows": all_rows,
    })


if __name__ == "__main__":
    main()
