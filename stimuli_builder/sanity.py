"""Sanity check per explanation method (Adebayo et al. 2018).

For each step of cascading randomization, compare the trained model's maps with the
randomized model's maps: Spearman rank correlation (of absolute attributions) and SSIM,
averaged over images. A method whose maps barely change once the whole model is random
(mean Spearman at or above ``threshold``) fails and is flagged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .explain.maps import to_map
from .manipulate import cascading_randomization

__all__ = ["spearman", "ssim", "MethodCheck", "sanity_check", "write_report", "FAILS_FLAG"]

FAILS_FLAG = "fails_randomization_check"


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort(dim=1)
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks.scatter_(1, order, torch.arange(x.shape[1], dtype=torch.float64).expand_as(order).contiguous())
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image between maps (N, ...) (ties broken by order)."""
    ra, rb = _ranks(a.flatten(1).double()), _ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp(min=1e-12)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity per image of maps (N, H, W) in [0, 1], Gaussian window."""
    x, y = a.unsqueeze(1).double(), b.unsqueeze(1).double()
    r = torch.arange(window, dtype=torch.float64) - window // 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(x.device)
    k = (g[:, None] * g[None, :]).view(1, 1, window, window)
    blur = lambda t: F.conv2d(t, k)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@dataclass
class MethodCheck:
    """Per randomization step: the top layer randomized, mean Spearman and SSIM; pass/fail."""

    method: str
    steps: list[str] = field(default_factory=list)
    spearman: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    threshold: float = 0.5
    passed: bool = True


def sanity_check(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                 methods: dict[str, Callable[..., torch.Tensor]], seed: int = 0, threshold: float = 0.5,
                 layers: Sequence[str] | None = None, group: int = 1) -> dict[str, MethodCheck]:
    """Run the cascading-randomization check for every method; return one MethodCheck each."""
    reference = {name: to_map(fn(model, inputs, target)) for name, fn in methods.items()}
    checks = {name: MethodCheck(name, threshold=threshold) for name in methods}
    for top, randomized in cascading_randomization(model, seed, layers, group):
        for name, fn in methods.items():
            maps = to_map(fn(randomized, inputs, target))
            checks[name].steps.append(top)
            checks[name].spearman.append(float(spearman(reference[name], maps).mean()))
            checks[name].ssim.append(float(ssim(reference[name], maps).mean()))
    for check in checks.values():
        check.passed = bool(check.spearman) and check.spearman[-1] < threshold
    return checks


def write_report(checks: dict[str, MethodCheck], path: Path) -> Path:
    """Write the checks as JSON (one entry per method)."""
    path.write_text(json.dumps({name: asdict(c) for name, c in checks.items()}, indent=1))
    return path
