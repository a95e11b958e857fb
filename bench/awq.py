"""Memory of the AWQ 4-bit LM (Step-Audio-EditX-AWQ-4bit) against the full-precision one, at the released size.

1. Bytes in memory of the 32-layer LM, counted from the modules themselves (built on the meta device
   from the release's config values, so nothing is allocated): bf16 full precision, and packed
   int4 with bf16 scales (asymmetric: + zero points; symmetric), embeddings and lm_head in bf16.
2. Peak resident memory of a CPU load (dequantized to bf16 at load, the CPU/MPS path) and of a
   packed load (what CUDA keeps), each in a fresh process, from an AWQ folder at the released width
   written with random weights (--layers: default 2 and 4, and a line extrapolated to 32 from those
   two; that line is only a rough guide, because the peak moves from the file-reading phase to the
   dequantizing phase as layers are added: measure 32 directly with --layers 32 --no-full, which
   needs ~2.5 GB of disk and ~7 GB of RAM).
4. With --decode-device: peak memory and decode tokens/s of the whole LM, bf16 full vs AWQ packed (on CUDA
   the GPU figure; random weights, so the tokens are noise but cost what real ones cost).
3. Time of one decode-step matmul chain of one layer (7 Linears, one token) on the CPU: plain bf16
   weights vs dequantizing the packed weights just in time (the CUDA path's method, timed here on
   the CPU only to show its relative cost; a GPU figure needs a GPU).

    python bench/awq.py                  # layers 2,4; about 2 GB of disk in a temp folder, ~3 GB RAM
    python bench/awq.py --layers 1,2     # smaller
    python bench/awq.py --layers 32 --no-full --repeats 0   # the real 32-layer AWQ load, measured
    python bench/awq.py --decode-device cuda --only-decode  # GPU: VRAM and tokens/s, full bf16 vs AWQ packed

Prints a table and one JSON line; it never fails on speed or memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a standalone script: find the repository

from bench.common import RELEASED_LM, machine, peak_mib, print_json, print_table, reset_peak, set_threads  # noqa: E402
from stepaudio_core.lm.awq import PackedLinear, PackQuantConfig, replace_with_packed  # noqa: E402
from stepaudio_core.lm.config import Step1Config  # noqa: E402
from stepaudio_core.lm.model import Step1ForCausalLM  # noqa: E402
from stepaudio_core.testing.lm import awq_quantization_config, quantize_rtn  # noqa: E402

GIB = 2**30


def lm_config(layers: int, quantized: bool = False) -> dict:
    d = {"model_type": "step1", "torch_dtype": "bfloat16", **RELEASED_LM, "num_hidden_layers": layers}
    if quantized:
        d["quantization_config"] = awq_quantization_config(4, 128, symmetric=False)
    return d


def module_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def counted_bytes() -> dict:
    """Bytes of the 32-layer LM as each path holds it, from meta modules."""
    cfg = Step1Config.from_dict(lm_config(32))
    out = {}
    with torch.device("meta"):
        full = Step1ForCausalLM(cfg).to(torch.bfloat16)
    out["bf16 full precision"] = module_bytes(full)
    for symmetric in (False, True):
        q = PackQuantConfig(num_bits=4, group_size=128, symmetric=symmetric, ignore=("lm_head",))
        with torch.device("meta"):
            m = Step1ForCausalLM(cfg).to(torch.bfloat16)
            replace_with_packed(m, q, torch.bfloat16)
        layers = sum(module_bytes(x) for x in m.modules() if isinstance(x, PackedLinear))
        out[f"int4 packed, {'sym' if symmetric else 'asym'}"] = module_bytes(m)
        out[f"  of which packed Linears ({'sym' if symmetric else 'asym'})"] = layers
    out["  embeddings + lm_head (bf16, both)"] = 2 * cfg.vocab_size * cfg.hidden_size * 2
    return out


def write_folder(folder: Path, layers: int, quantized: bool = True, seed: int = 0) -> None:
    """A folder at the released width with ``layers`` layers and random weights: 4-bit asym g128, or bf16."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(lm_config(layers, quantized=quantized)))
    cfg = Step1Config.from_dict(lm_config(layers))
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Step1ForCausalLM(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in shapes.items():
        w = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
        if quantized and key.startswith("model.layers.") and key.endswith("_proj.weight"):
            for name, t in quantize_rtn(w, 4, 128, symmetric=False).items():
                tensors[key[: -len("weight")] + name] = t.to(torch.bfloat16) if t.is_floating_point() else t
        else:
            tensors[key] = w
    save_file(tensors, str(folder / "model.safetensors"))


def measure_load(folder: str, keep_packed: bool | None) -> None:
    """Run in a fresh process: peak RSS of one load, printed as JSON."""
    from stepaudio_core.lm.load import load_step1

    cpu = torch.device("cpu")
    reset_peak(cpu)
    before = peak_mib(cpu)
    t = time.perf_counter()
    model = load_step1(folder, dtype=torch.bfloat16, keep_packed=keep_packed)
    seconds = time.perf_counter() - t
    print(
        json.dumps(
            {
                "peak_mib": peak_mib(cpu),
                "start_mib": before,
                "model_mib": module_bytes(model) / 2**20,
                "seconds": seconds,
            }
        )
    )


def load_in_subprocess(folder: Path, keep_packed: bool | None) -> dict:
    cmd = [sys.executable, __file__, "--measure-load", str(folder)] + (["--keep-packed"] if keep_packed else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_layer_step(repeats: int) -> dict:
    """One token through one layer's 7 Linears: plain bf16 vs just-in-time dequantization of packed weights."""
    cfg = Step1Config.from_dict(lm_config(1))
    q = PackQuantConfig(num_bits=4, group_size=128, symmetric=False, ignore=("lm_head",))
    g = torch.Generator().manual_seed(0)
    shapes = [(cfg.hidden_size, cfg.hidden_size)] * 2 + [(cfg.num_attention_groups * cfg.head_dim, cfg.hidden_size)] * 2
    shapes += [(cfg.intermediate_size, cfg.hidden_size)] * 2 + [(cfg.hidden_size, cfg.intermediate_size)]
    plain, packed = [], []
    for out_f, in_f in shapes:
        w = (torch.randn(out_f, in_f, generator=g) * 0.02).to(torch.bfloat16)
        lin = torch.nn.Linear(in_f, out_f, bias=False, dtype=torch.bfloat16).requires_grad_(False)
        lin.weight.copy_(w)
        p = PackedLinear(in_f, out_f, q, torch.bfloat16)
        for name, t in quantize_rtn(w, 4, 128, symmetric=False).items():
            getattr(p, name).data = t.to(torch.bfloat16) if t.is_floating_point() else t
        plain.append(lin)
        packed.append(p)
    result = {}
    for label, mods in (("plain bf16", plain), ("packed, dequantized per call", packed)):
        xs = [torch.randn(1, 1, m.in_features, generator=g).to(torch.bfloat16) for m in mods]
        with torch.no_grad():
            for m, x in zip(mods, xs):
                m(x)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                for m, x in zip(mods, xs):
                    m(x)
                times.append(time.perf_counter() - t)
        result[label] = sorted(times)[len(times) // 2] * 1000
    return result


def packed_random_lm(device: torch.device, dtype: torch.dtype, layers: int) -> Step1ForCausalLM:
    """A released-width LM with random packed 4-bit Linears (asym g128), allocated on ``device`` as packed only."""
    q = PackQuantConfig(num_bits=4, group_size=128, symmetric=False, ignore=("lm_head",))
    with torch.device("meta"):
        model = Step1ForCausalLM(Step1Config.from_dict(lm_config(layers))).to(dtype)
        replace_with_packed(model, q, dtype)
    model = model.to_empty(device=device).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("weight_shape"):
                continue
            elif p.dtype == torch.int32:  # any bit pattern is a valid set of codes
                p.copy_(torch.randint(-(2**31), 2**31 - 1, p.shape, generator=g, device=device, dtype=torch.int32))
            elif name.endswith(
                "weight_scale"
            ):  # codes spread over +-8: weights of std ~ 4.6 scale, like N(0, 1/fan_in)
                p.fill_(1 / (4.6 * 3072**0.5))
            else:
                p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
        for m in model.modules():
            if isinstance(m, PackedLinear):
                m.weight_shape.copy_(torch.tensor([m.out_features, m.in_features]))
    return model


def time_decode(device: torch.device, dtype: torch.dtype, layers: int, prompt: int, tokens: int) -> list[list]:
    """Peak memory and decode speed of the full model vs the packed one (one token at a time after a prefill)."""
    from bench.common import random_lm, sync

    rows = []
    for label, build in (("bf16/fp32 full", random_lm), ("AWQ packed, JIT dequant", packed_random_lm)):
        reset_peak(device)
        model = build(device, dtype, layers=layers)
        weights = module_bytes(model) / GIB
        ids = torch.randint(0, 65536, (1, prompt), device=device)
        with torch.no_grad():
            cache = model.new_cache(prompt + tokens + 1)
            nxt = model.prefill(ids, cache).argmax(-1, keepdim=True)
            sync(device)
            t = time.perf_counter()
            for _ in range(tokens):
                nxt = model(nxt, cache, last_only=True)[:, -1].argmax(-1, keepdim=True)
            sync(device)
            per_token = (time.perf_counter() - t) / tokens
        rows.append([f"{label}, {layers} layers", weights, peak_mib(device) / 1024, 1 / per_token])
        del model, cache
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/awq.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="2,4", help="layer counts of the measured folders (two, for the slope)")
    parser.add_argument("--repeats", type=int, default=5, help="of the one-layer step timing (0: skip it)")
    parser.add_argument(
        "--no-full", action="store_true", help="skip the bf16 full-precision folder (it needs 2x its size)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--decode-device", help="also time decoding on this device (cuda: the GPU figure)")
    parser.add_argument("--decode-layers", type=int, default=32)
    parser.add_argument("--decode-dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--only-decode", action="store_true", help="skip the byte counts, loads and layer step")
    parser.add_argument("--measure-load", help=argparse.SUPPRESS)
    parser.add_argument("--keep-packed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.measure_load:
        measure_load(args.measure_load, args.keep_packed)
        return 0

    cpu = torch.device("cpu")
    if args.decode_device:
        device = torch.device(args.decode_device)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.decode_dtype]
        print(f"# {machine(device)}")
        rows = time_decode(device, dtype, args.decode_layers, prompt=256, tokens=32)
        print_table(["decode (prompt 256, 32 tokens)", "weights GiB", "peak GiB", "tokens/s"], rows)
        print_json({"bench": "awq-decode", "machine": machine(device), "rows": rows})
        if args.only_decode:
            return 0
    print(f"# {machine(cpu)}")
    counts = counted_bytes()
    print_table(["32-layer LM in memory", "GiB"], [[k, v / GIB] for k, v in counts.items()])

    layer_counts = [int(x) for x in args.layers.split(",")]
    loads = {}
    with tempfile.TemporaryDirectory(prefix="stepaudio-awq-bench-") as tmp:
        for n in layer_counts:
            for kind, quantized in (("awq", True), ("bf16", False))[: 1 if args.no_full else 2]:
                folder = Path(tmp) / f"{kind}-{n}"
                write_folder(folder, n, quantized=quantized)
                for keep in (False, True) if quantized else (None,):
                    loads.setdefault(n, {})[keep] = load_in_subprocess(folder, keep)
                for f in folder.iterdir():
                    f.unlink()
    rows, record = [], {"bench": "awq", "machine": machine(cpu), "bytes": counts, "loads": {}}
    names = {False: "AWQ dequantized to bf16 (CPU path)", True: "AWQ packed (CUDA path)", None: "bf16 full folder"}
    for n, by in loads.items():
        for packed, r in by.items():
            label = f"{n} layers, {names[packed]}"
            rows.append([label, r["peak_mib"] / 1024, r["model_mib"] / 1024, r["seconds"]])
            record["loads"][label] = r
    if len(layer_counts) >= 2:
        a, b = layer_counts[0], layer_counts[-1]
        for packed in (False, True) if args.no_full else (False, True, None):
            slope = (loads[b][packed]["peak_mib"] - loads[a][packed]["peak_mib"]) / (b - a)
            peak32 = loads[b][packed]["peak_mib"] + slope * (32 - b)
            label = f"32 layers (extrapolated), {names[packed]}"
            rows.append([label, peak32 / 1024, None, None])
            record["loads"][label] = {"peak_mib": peak32, "per_layer_mib": slope}
    print_table(["CPU load (fresh process)", "peak RSS GiB", "model GiB", "seconds"], rows)

    if args.repeats:
        step = time_layer_step(args.repeats)
        print_table(["one layer, one token, CPU", "ms"], [[k, v] for k, v in step.items()])
        record["layer_step_ms"] = step
    print_json(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
