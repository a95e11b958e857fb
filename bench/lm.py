"""Decode cost per token of the Step1 LM as the context grows: our cache vs the reference's way.

At the released width (hidden 3072, 48 heads over 4 groups, MLP 8192) with random weights, fp32,
on the CPU unless --device says otherwise. "ours" decodes with the preallocated KV cache and one
bias row per step; "naive" does what the reference does at every step in every layer: grow the
cache by concatenation, repeat k/v to all 48 heads and build the full heads x L x L sqrt-ALiBi
bias, of which it uses the last row. The cache is filled with random keys and values up to each
context length instead of running a prefill: decode cost does not depend on their values.

"ours" is timed round-robin over the contexts, one step each per round, and each context's
median is reported: on a shared machine, load that comes and goes hits every context alike,
so the growth ratio stays honest.

    python bench/lm.py                                  # contexts 256,1024,2048,4096
    python bench/lm.py --contexts 64,128 --tokens 4     # a quick smoke run

The naive variant at 4096 holds several 48 x 4096 x 4096 fp32 tensors (a few GB) at once.
Prints a table and one JSON line; it never fails on speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import load_average, machine, print_json, print_table, random_lm, set_threads, sync  # noqa: E402
from stepaudio_core.lm.model import Step1ForCausalLM, alibi_slopes  # noqa: E402


def square_bias(n_heads: int, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The full (heads, L, L) table, built the reference's way: every entry, then a masked copy."""
    keep = torch.tril(torch.ones(1, length, length, device=device))
    dist = torch.arange(length, device=device).view(-1, 1) - torch.arange(length, device=device).view(1, -1)
    bias = (-torch.sqrt(dist)).view(1, length, length) * alibi_slopes(n_heads).to(device).view(-1, 1, 1)
    return bias.masked_fill(keep == 0, float("-inf")).to(dtype)


def naive_step(model: Step1ForCausalLM, token: torch.Tensor, kv: list[list[torch.Tensor]]) -> torch.Tensor:
    cfg = model.config
    H, G, D = cfg.num_attention_heads, cfg.num_attention_groups, cfg.head_dim
    x = model.model.embed_tokens(token)
    for i, layer in enumerate(model.model.layers):
        a = layer.self_attn
        h = layer.input_layernorm(x)
        kv[i][0] = torch.cat([kv[i][0], a.k_proj(h)], dim=1)  # (1, L, G*D), as a dynamic cache stores them
        kv[i][1] = torch.cat([kv[i][1], a.v_proj(h)], dim=1)
        L = kv[i][0].shape[1]
        q = a.q_proj(h).view(1, 1, H, D).transpose(1, 2)
        k = kv[i][0].view(1, L, G, D).repeat_interleave(H // G, dim=2).transpose(1, 2)
        v = kv[i][1].view(1, L, G, D).repeat_interleave(H // G, dim=2).transpose(1, 2)
        mask = square_bias(H, L, q.dtype, q.device)[None, :, -1:, :].contiguous()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + a.o_proj(out.transpose(1, 2).reshape(1, 1, H * D))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(model.model.norm(x))[:, -1]


def filled_caches(model: Step1ForCausalLM, context: int, tokens: int, seed: int):
    cfg = model.config
    g = torch.Generator(device="cpu").manual_seed(seed)
    cache = model.new_cache(context + tokens + 2)
    naive = []
    for i in range(cfg.num_hidden_layers):
        k = torch.randn(1, context, cfg.num_attention_groups * cfg.head_dim, generator=g).to(model.device)
        v = torch.randn(1, context, cfg.num_attention_groups * cfg.head_dim, generator=g).to(model.device)
        cache.k[i][:, :, :context] = k.view(1, context, cfg.num_attention_groups, cfg.head_dim).transpose(1, 2)
        cache.v[i][:, :, :context] = v.view(1, context, cfg.num_attention_groups, cfg.head_dim).transpose(1, 2)
        naive.append([k, v])
    cache.length = context
    return cache, naive


def time_steps(step, tokens: int, device: torch.device, warmup: bool = True) -> list[float]:
    """Milliseconds of each of ``tokens`` steps, after one untimed warm-up step unless ``warmup`` is False."""
    if warmup:
        step()
        sync(device)
    times = []
    for _ in range(tokens):
        start = time.perf_counter()
        step()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def check_agreement(model: Step1ForCausalLM, token: torch.Tensor, ctx: int) -> float:
    """max|diff| of one step of both variants from the same cache contents; exits if they disagree."""
    cache, naive = filled_caches(model, ctx, 1, seed=ctx)
    a = model(token, cache, last_only=True)[:, -1]
    b = naive_step(model, token, naive)
    diff = (a - b).abs().max().item()
    if diff > 1e-3 * max(1.0, a.abs().max().item()):
        raise SystemExit(f"the two variants disagree at context {ctx} (max|diff| {diff}): not comparable")
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", default="256,1024,2048,4096", help="comma-separated context lengths")
    ap.add_argument("--tokens", type=int, default=16, help="timed decode steps per context (ours)")
    ap.add_argument("--naive-tokens", type=int, default=4, help="timed decode steps per context (naive: slow)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=4096, help="lm_head width (74752 in the release; it costs the "
                    "same per token in both variants)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    set_threads(args.threads)
    device = torch.device(args.device)
    contexts = [int(c) for c in args.contexts.split(",")]
    model = random_lm(device, torch.float32, layers=args.layers, vocab=args.vocab)
    token = torch.tensor([[7]], device=device)
    print(f"Step1 decode, width 3072, 48 heads / 4 groups, {args.layers} layers, vocab {args.vocab}, fp32; "
          f"{machine(device)}")
    with torch.inference_mode():
        diffs = {ctx: check_agreement(model, token, ctx) for ctx in contexts}
        caches = {ctx: filled_caches(model, ctx, args.tokens + 2, seed=ctx)[0] for ctx in contexts}
        ours = {ctx: [] for ctx in contexts}
        for ctx in contexts:  # warm-up: first touches of fresh weights and caches are slow
            model(token, caches[ctx], last_only=True)
        for _ in range(args.tokens):
            for ctx in contexts:
                ours[ctx] += time_steps(lambda c=caches[ctx]: model(token, c, last_only=True), 1, device, False)
        naive = {}
        for ctx in contexts:
            kv = filled_caches(model, ctx, args.naive_tokens, seed=ctx)[1]
            naive[ctx] = time_steps(lambda kv=kv: naive_step(model, token, kv), args.naive_tokens, device)
    rows = []
    for ctx in contexts:
        o, n = statistics.median(ours[ctx]), statistics.median(naive[ctx])
        rows.append({"context": ctx, "ours_ms": round(o, 3), "naive_ms": round(n, 3), "ratio": round(n / o, 2),
                     "max_abs_diff": diffs[ctx]})
    print_table(["context", "ours ms/token", "naive ms/token", "naive/ours"],
                [[r["context"], r["ours_ms"], r["naive_ms"], f"{r['ratio']:.2f}x"] for r in rows])
    flat = rows[-1]["ours_ms"] / rows[0]["ours_ms"]
    last = contexts[-1]
    print(f"ours at {last} vs {contexts[0]}: {flat:.2f}x; naive/ours at {last}: {rows[-1]['ratio']:.2f}x "
          f"(medians; load average now {load_average()})")
    print_json({
        "bench": "lm_decode", "hidden": 3072, "heads": 48, "groups": 4, "layers": args.layers, "vocab": args.vocab,
        "dtype": "float32", "device": str(device), "threads": torch.get_num_threads(), "tokens": args.tokens,
        "naive_tokens": args.naive_tokens, "load_average": load_average(), "results": rows,
        "ours_growth": round(flat, 2), "ratio_at_max_context": rows[-1]["ratio"],
    })


if __name__ == "__main__":
    main()
