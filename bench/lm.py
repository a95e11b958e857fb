"""Decode cost per token of the Step1 LM as the context grows: our cache vs the reference's way.

At the released width (hidden 3072, 48 heads over 4 groups, MLP 8192) with random weights, fp32,
on the CPU unless --device says otherwise. "ours" decodes with the preallocated KV cache and one
bias row per step; "naive" does what the reference does at every step in every layer: grow the
cache by concatenation, repeat k/v to all 48 heads and build the full heads x L x L sqrt-ALiBi
bias, of which it uses the last row. The cache is filled with random keys and values up to each
context length instead of running a prefill: decode cost does not depend on their values.

    python bench/lm.py                                  # contexts 256,1024,2048,4096
    python bench/lm.py --contexts 64,128 --tokens 4     # a quick smoke run

The naive variant at 4096 holds several 48 x 4096 x 4096 fp32 tensors (a few GB) at once.
Prints a table and one JSON line; it never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find stepaudio_core

from stepaudio_core.lm.config import Step1Config  # noqa: E402
from stepaudio_core.lm.model import Step1ForCausalLM, alibi_slopes  # noqa: E402


def build_model(layers: int, vocab: int, device: torch.device, seed: int = 0) -> Step1ForCausalLM:
    cfg = Step1Config(
        hidden_size=3072, intermediate_size=8192, num_attention_heads=48, num_attention_groups=4,
        num_hidden_layers=layers, vocab_size=vocab, torch_dtype="float32",
    )
    with torch.device("meta"):
        model = Step1ForCausalLM(cfg)
    model = model.to_empty(device=device).eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    return model


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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_decode(step, tokens: int, device: torch.device) -> float:
    """Mean ms per token over ``tokens`` steps after one warm-up step."""
    step(0)
    sync(device)
    start = time.perf_counter()
    for t in range(1, tokens + 1):
        step(t)
    sync(device)
    return (time.perf_counter() - start) * 1000 / tokens


def measure(model: Step1ForCausalLM, token: torch.Tensor, ctx: int, tokens: int, device: torch.device) -> dict:
    cache, naive = filled_caches(model, ctx, tokens, seed=ctx)
    a = model(token, cache, last_only=True)[:, -1]
    b = naive_step(model, token, naive)
    diff = (a - b).abs().max().item()
    if diff > 1e-3 * max(1.0, a.abs().max().item()):
        raise SystemExit(f"the two variants disagree at context {ctx} (max|diff| {diff}): not comparable")
    ours = time_decode(lambda t: model(token, cache, last_only=True), tokens, device)
    slow = time_decode(lambda t: naive_step(model, token, naive), tokens, device)
    return {"context": ctx, "ours_ms": round(ours, 3), "naive_ms": round(slow, 3), "ratio": round(slow / ours, 2),
            "max_abs_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", default="256,1024,2048,4096", help="comma-separated context lengths")
    ap.add_argument("--tokens", type=int, default=16, help="timed decode steps per context")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=4096, help="lm_head width (74752 in the release; it costs the "
                    "same per token in both variants)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    contexts = [int(c) for c in args.contexts.split(",")]
    model = build_model(args.layers, args.vocab, device)
    token = torch.tensor([[7]], device=device)
    rows = []
    print(f"Step1 decode, width 3072, 48 heads / 4 groups, {args.layers} layers, fp32, {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'context':>8} {'ours ms/tok':>12} {'naive ms/tok':>13} {'naive/ours':>11}")
    with torch.inference_mode():
        # first touches of freshly allocated weights are slow: warm both variants up before timing
        cache, naive = filled_caches(model, 8, 4, seed=0)
        for _ in range(2):
            model(token, cache, last_only=True)
            naive_step(model, token, naive)
        for ctx in contexts:
            rows.append(measure(model, token, ctx, args.tokens, device))
            r = rows[-1]
            print(f"{ctx:>8} {r['ours_ms']:>12.2f} {r['naive_ms']:>13.2f} {r['ratio']:>10.2f}x", flush=True)
    flat = rows[-1]["ours_ms"] / rows[0]["ours_ms"]
    last = contexts[-1]
    print(f"ours at {last} vs {contexts[0]}: {flat:.2f}x; naive/ours at {last}: {rows[-1]['ratio']:.2f}x")
    print(json.dumps({
        "bench": "lm_decode", "hidden": 3072, "heads": 48, "groups": 4, "layers": args.layers, "vocab": args.vocab,
        "dtype": "float32", "device": str(device), "threads": torch.get_num_threads(), "tokens": args.tokens,
        "results": rows, "ours_growth": round(flat, 2), "ratio_at_max_context": rows[-1]["ratio"],
    }))


if __name__ == "__main__":
    main()
