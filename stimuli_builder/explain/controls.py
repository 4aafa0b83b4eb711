"""Control "explanations" that ignore the model: Sobel edge maps and smooth random maps.

They share the call shape of the methods, so they can stand in as baselines (an explanation
that only shows edges, or nothing) and the sanity check must flag them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import Target

__all__ = ["edge", "random_map"]

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def edge(model: nn.Module, inputs: torch.Tensor, target: Target = 0, **_: object) -> torch.Tensor:
    """Sobel gradient magnitude of the grey-level input, (N, 1, H, W); the model is not used."""
    grey = inputs.mean(1, keepdim=True)
    kx = _SOBEL_X.to(inputs).view(1, 1, 3, 3)
    ky = kx.transpose(2, 3)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    return torch.sqrt(F.conv2d(padded, kx) ** 2 + F.conv2d(padded, ky) ** 2 + 1e-12)


def random_map(model: nn.Module, inputs: torch.Tensor, target: Target = 0, seed: int = 0,
               smooth: int | None = None, **_: object) -> torch.Tensor:
    """Smooth random non-negative maps (N, 1, H, W) from a seeded generator; the model is not used."""
    n, _, h, w = inputs.shape
    smooth = smooth or max(2, h // 8)
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 1, max(1, h // smooth), max(1, w // smooth)), generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(min=0).to(inputs)
