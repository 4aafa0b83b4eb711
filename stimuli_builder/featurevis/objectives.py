"""Objectives: per-image losses built from recorded layer activations.

An :class:`Objective` maps the recorded activations (layer name -> tensor with the batch
first) to one loss per image, so that every image in a batch can optimize its own unit.
Objectives add, subtract and scale, and each carries a description for provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Objective", "unit_objectives", "diversity"]

Acts = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A per-image loss (lower is better) over recorded activations, with its layers."""

    fn: Callable[[Acts], torch.Tensor]
    layers: frozenset[str]
    description: str

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), self.layers | other.layers,
                         f"{self.description} + {other.description}")

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    def __mul__(self, factor: float) -> "Objective":
        return Objective(lambda a: factor * self(a), self.layers, f"{factor} * ({self.description})")

    __rmul__ = __mul__


def _channel_means(acts: Acts, layers: Sequence[str], channels: torch.Tensor) -> torch.Tensor:
    """Spatial mean of image i's own channel in its own layer, for every image i."""
    out = None
    for name in sorted(set(layers)):
        a = acts[name]
        rows = torch.tensor([i for i, l in enumerate(layers) if l == name], device=a.device)
        chosen = a[rows, channels.to(a.device)[rows]]
        value = chosen.mean(dim=tuple(range(1, chosen.ndim))) if chosen.ndim > 1 else chosen
        if out is None:
            out = torch.zeros(len(layers), dtype=value.dtype, device=value.device)
        out = out.index_put((rows,), value)
    return out


def unit_objectives(units: Sequence[tuple[str, int]], signs: Sequence[float] | None = None) -> Objective:
    """Image i maximizes (sign +1) or minimizes (-1) the mean of its unit ``units[i]``."""
    layers = [u[0] for u in units]
    channels = torch.tensor([int(u[1]) for u in units])
    sign = torch.tensor([1.0] * len(units) if signs is None else [float(s) for s in signs])

    def fn(acts: Acts) -> torch.Tensor:
        values = _channel_means(acts, layers, channels)
        return -sign.to(values) * values

    desc = f"per-image unit objective over {len(units)} units (spatial mean; sign per image)"
    return Objective(fn, frozenset(layers), desc)


def diversity(layer: str, groups: Sequence[int]) -> Objective:
    """Penalise similar Gram matrices of ``layer`` among images sharing a group id (lucid).

    For a layer without spatial dimensions the activation vectors are compared instead.
    """
    group = torch.tensor(list(groups))

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer]
        if a.ndim > 2:
            flat = a.flatten(2)
            feats = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).flatten(1), dim=1)
        else:  # no spatial dimensions: compare the activation vectors themselves
            feats = F.normalize(a, dim=1)
        sim = feats @ feats.t()
        g = group.to(a.device)
        same = (g[:, None] == g[None, :]) & ~torch.eye(len(g), dtype=torch.bool, device=a.device)
        count = same.sum(1).clamp(min=1)
        return (sim * same).sum(1) / count

    return Objective(fn, frozenset([layer]), f"diversity({layer})")
