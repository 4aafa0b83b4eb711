"""Manipulated models and maps: cascading weight randomization (Adebayo et al. 2018).

``cascading_randomization`` yields copies of the model in which the top layer, then the top
two, and so on, have their parameters redrawn from a seeded generator (Gaussian with each
tensor's own mean and standard deviation, so activations keep their scale). The original
model is never modified.
"""

from __future__ import annotations

import copy
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from .models import iter_param_layers

__all__ = ["randomizable_layers", "randomize_layers", "cascading_randomization"]


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of modules with weights (conv, linear, norm), from input to output."""
    return [name for name, _ in iter_param_layers(model)]


@torch.no_grad()
def randomize_layers(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose named layers have re-drawn parameters (seeded)."""
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    gen = torch.Generator().manual_seed(seed)
    for name in layers:
        for pname, param in sorted(modules[name].named_parameters(recurse=False)):
            mean = float(param.mean()) if param.numel() > 1 else 0.0
            std = float(param.std()) if param.numel() > 1 else 1.0
            if pname == "weight" and isinstance(modules[name], nn.modules.batchnorm._NormBase):
                mean, std = 1.0, max(std, 0.1)
            noise = torch.randn(param.shape, generator=gen)
            param.copy_((mean + std * noise).to(param))
    return clone.eval()


def cascading_randomization(model: nn.Module, seed: int = 0, layers: Optional[Sequence[str]] = None,
                            group: int = 1) -> Iterator[tuple[str, nn.Module]]:
    """Yield (top randomized layer, model copy), randomizing cumulatively from the output down.

    ``layers`` defaults to every module with weights; ``group`` layers are added per step.
    """
    order = list(reversed(list(layers) if layers is not None else randomizable_layers(model)))
    for end in range(group, len(order) + group, group):
        chosen = order[:end]
        yield chosen[-1], randomize_layers(model, chosen, seed)
