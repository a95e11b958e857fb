"""What the bench scripts share: real-size random models, timing, peak memory, the table and the JSON line.

Every model here has the released dimensions and random weights, built in memory without any
weight file (the LM from the release's config.json values, the decoder and tokenizer from
their config dataclasses' defaults, which are the release's). Random weights make noise, not
speech, but cost exactly what the real ones cost.

Peak memory is what the device reports: ``torch.cuda.max_memory_allocated`` on CUDA, and on the
CPU the process's peak resident set (Linux ``VmHWM``, which ``reset_peak`` rewinds through
``/proc/self/clear_refs``, so each stage gets its own peak; elsewhere ``getrusage``, a
whole-process peak that cannot be rewound).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from stepaudio_core.codes import GROUP_SECONDS, VQ02_CODES, VQ06_CODES
from stepaudio_core.decoder.campplus import CAMPPlus, CAMPPlusDims
from stepaudio_core.decoder.config import DecoderConfig
from stepaudio_core.decoder.flow import CausalMaskedDiffWithXvec
from stepaudio_core.decoder.hift import HiFTGenerator
from stepaudio_core.decoder.token2wav import Decoder
from stepaudio_core.lm.config import Step1Config
from stepaudio_core.lm.model import Step1ForCausalLM
from stepaudio_core.testing.random_weights import randomize_
from stepaudio_core.tokenizer.audio_tokenizer import AudioTokenizer
from stepaudio_core.tokenizer.frontend import FrontendConfig
from stepaudio_core.tokenizer.paraformer import ParaformerConfig
from stepaudio_core.tokenizer.s3 import S3Dims, S3Tokenizer
from stepaudio_core.tokenizer.vq02 import VQ02Tokenizer
from stepaudio_core.tokenizer.vq06 import VQ06Tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# The released Step-Audio-EditX config.json (step1), the values the LM is built from.
RELEASED_LM = {
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_attention_heads": 48,
    "num_attention_groups": 4,
    "num_hidden_layers": 32,
    "vocab_size": 74752,
    "rms_norm_eps": 1e-5,
    "max_seq_len": 32768,
}


# ---------------------------------------------------------------------------------------- models


def random_lm(
    device: torch.device, dtype: torch.dtype = torch.float32, layers: int | None = None, vocab: int | None = None,
    seed: int = 0,
) -> Step1ForCausalLM:
    """The Step1 LM at the released width, random weights drawn on ``device`` (``testing.random_weights``).

    ``layers`` and ``vocab`` shorten the model (released: 32 layers, 74752 ids); nothing else changes.
    """
    values = dict(RELEASED_LM, torch_dtype="float32")
    if layers is not None:
        values["num_hidden_layers"] = layers
    if vocab is not None:
        values["vocab_size"] = vocab
    with torch.device("meta"):
        model = Step1ForCausalLM(Step1Config(**values))
    model = model.to(dtype).to_empty(device=device).eval().requires_grad_(False)
    # drawn tensor by tensor into the allocated weights: never a second copy of 14 GB
    return randomize_(model, torch.Generator(device=device).manual_seed(seed))


def random_tokenizer(device: torch.device, seed: int = 0) -> AudioTokenizer:
    """vq02 (Paraformer, 50 SAN-M layers, d 512, 1024 centroids) + vq06 (S3 v1, 6 layers, d 1280), fp32."""
    gen = torch.Generator().manual_seed(seed)
    cmvn = torch.stack([-12 + 2 * torch.randn(560, generator=gen), 0.3 + 0.05 * torch.rand(560, generator=gen)])
    vq02 = VQ02Tokenizer(ParaformerConfig(), FrontendConfig(), cmvn, torch.randn(1024, 512, generator=gen))
    vq02 = randomize_(vq02, gen)
    s3 = randomize_(S3Tokenizer(S3Dims()), gen)
    s3.quantizer._codebook.embed.copy_(torch.randn(4096, 1280, generator=gen))
    return AudioTokenizer(vq02, VQ06Tokenizer(s3)).eval().to(device)


def random_decoder(device: torch.device, seed: int = 0, flow_dtype: torch.dtype = torch.float32) -> Decoder:
    """Flow + HiFT + CAM++ at the released sizes (the config dataclasses' defaults)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = DecoderConfig()
    flow = randomize_(CausalMaskedDiffWithXvec(cfg.flow), gen)
    hift = randomize_(HiFTGenerator(cfg.hift), gen)
    campplus = randomize_(CAMPPlus(CAMPPlusDims()), gen)
    decoder = Decoder(cfg, flow, hift, campplus).eval().to(device)
    decoder.flow.to(flow_dtype)
    return decoder


# ---------------------------------------------------------------------------------------- inputs


def test_signal(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A gliding tone under noise: no silence for the tokenizer's trim to remove."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    return 0.4 * torch.sin(2 * torch.pi * (150 + 40 * t) * t) + 0.05 * torch.randn(n, generator=gen)


def random_mixed_codes(seconds: float, gen: torch.Generator) -> list[int]:
    """Mixed decoder ids, groups of [vq02, vq02, vq06, vq06, vq06], one group per 120 ms."""
    ids = []
    for _ in range(max(1, round(seconds / GROUP_SECONDS))):
        ids += torch.randint(0, VQ02_CODES, (2,), generator=gen).tolist()
        ids += (VQ02_CODES + torch.randint(0, VQ06_CODES, (3,), generator=gen)).tolist()
    return ids


# ---------------------------------------------------------------------------------------- measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn, device: torch.device, repeats: int = 1, warmup: bool = True):
    """(best seconds of ``repeats`` calls, the last result); one untimed call first unless ``warmup`` is False."""
    if warmup:
        fn()
        sync(device)
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA: allocator statistics; Linux CPU: the process's VmHWM)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        pass


def peak_mib(device: torch.device) -> float:
    """Peak memory since ``reset_peak``: allocated bytes on CUDA, resident set on the CPU, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def machine(device: torch.device) -> str:
    """Where a number was measured, for the table's header."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    load = f", load average {load_average()}" if hasattr(os, "getloadavg") else ""
    return f"{device.type} ({name}), {torch.get_num_threads()} CPU threads{load}, torch {torch.__version__}"


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def print_table(header: list[str], rows: list[list]) -> None:
    """A plain fixed-width table: first column left-aligned, the others right-aligned; floats with 3 decimals."""

    def cell(v):
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    print(fmt(header))
    for r in cells:
        print(fmt(r))


def print_json(record: dict) -> None:
    print(json.dumps(record), flush=True)


def set_threads(n: int) -> None:
    if n:
        torch.set_num_threads(n)
