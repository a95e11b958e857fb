"""The one rule by which tiny test models and the benches' full-size models get random weights.

Random weights make noise, not speech, but they must keep activations in a sane range through
every layer, and no gate may stay at its zero initialisation (a DiT with zeroed adaLN gates
would output nothing): matrices ~ U(+-1/sqrt(fan_in)); 1-D weights, scales and alphas
~ 1 + 0.1 N; BatchNorm running variances ~ U(0.5, 1.5); other vectors ~ 0.1 N. Each tensor is
drawn on its own device from ``generator`` (which must live there), in state-dict order, so a
seed reproduces a model exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def random_like(name: str, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A float32 tensor of ``t``'s shape on ``t``'s device, drawn by the rule for the parameter ``name``."""

    def rand():
        return torch.rand(t.shape, generator=generator, device=t.device)

    def randn():
        return torch.randn(t.shape, generator=generator, device=t.device)

    if t.dim() >= 2:
        bound = 1.0 / math.sqrt(max(1, t[0].numel()))
        return rand() * 2 * bound - bound
    if name.endswith("running_var"):
        return 0.5 + rand()
    if name.endswith(("weight", "alpha", "original0")):
        return 1 + 0.1 * randn()
    return 0.1 * randn()


def randomize_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Overwrite every floating tensor of ``module`` (parameters and buffers) by the rule, in place."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(random_like(name, t, generator))
    return module


def random_state(state: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """New tensors for the floating entries of ``state`` (keys kept, integers passed through)."""
    return {k: random_like(k, v, generator) if v.is_floating_point() else v for k, v in state.items()}
