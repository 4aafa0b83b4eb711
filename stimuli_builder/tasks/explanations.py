"""Computing explanation maps for the explanation tasks, with their manipulated twins."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from .. import explain
from ..manipulate import randomizable_layers, randomize_layers
from ..sanity import FAILS_FLAG, sanity_check, write_report
from .common import BuildContext

__all__ = ["method_functions", "compute_maps", "fully_randomized", "run_sanity_check", "display_scale",
           "sample_inputs"]


def sample_inputs(ctx: BuildContext, rng: Any, total: int, task: str) -> tuple[Any, torch.Tensor]:
    """``total`` distinct images of the folder drawn with ``rng``: their indices and the batch on the model's device."""
    available = len(ctx.images.images)
    if available < total:
        raise ValueError(f"{task} needs {total} images, the folder has {available}")
    chosen = rng.choice(available, size=total, replace=False)
    return chosen, ctx.images.images[torch.from_numpy(chosen)].to(ctx.device)


def method_functions(methods: Sequence[str], ctx: BuildContext, target_layer: Optional[str] = None,
                     ig_steps: int = 32, smoothgrad_samples: int = 16) -> dict[str, Callable[..., torch.Tensor]]:
    """Explanation functions ``fn(model, inputs, target)`` with the task's parameters bound."""
    unknown = [m for m in methods if m not in explain.METHODS]
    if unknown:
        raise ValueError(f"unknown explanation method(s) {unknown}; choose from {', '.join(explain.METHODS)}")
    fns: dict[str, Callable[..., torch.Tensor]] = {}
    for name in methods:
        if name == "integrated_gradients":
            fns[name] = lambda m, x, t: explain.integrated_gradients(m, x, t, steps=ig_steps)
        elif name == "smoothgrad":
            fns[name] = lambda m, x, t: explain.smoothgrad(m, x, t, n_samples=smoothgrad_samples, seed=ctx.seed)
        elif name == "gradcam":
            layer = target_layer or explain.last_spatial_layer(ctx.model, ctx.images.images[:1].to(ctx.device))
            fns[name] = lambda m, x, t, _l=layer: explain.gradcam(m, x, t, layer=_l)
        else:
            fns[name] = explain.METHODS[name]
    return fns


def compute_maps(fns: dict[str, Callable[..., torch.Tensor]], model: nn.Module, inputs: torch.Tensor,
                 target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Maps (N, H, W) in [0, 1] for every method."""
    return {name: explain.to_map(fn(model, inputs, target)).cpu() for name, fn in fns.items()}


def fully_randomized(model: nn.Module, seed: int) -> nn.Module:
    """The last step of cascading randomization: every layer with weights re-drawn."""
    return randomize_layers(model, randomizable_layers(model), seed)


def run_sanity_check(ctx: BuildContext, fns: dict[str, Callable[..., torch.Tensor]], inputs: torch.Tensor,
                     target: torch.Tensor, threshold: float = 0.5) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Sanity-check every method and the controls; write ``sanity_check.json``; return flags and summary."""
    checked = {**fns, "edge": explain.edge,
               "random_map": lambda m, x, t: explain.random_map(m, x, t, seed=ctx.seed)}
    layers = randomizable_layers(ctx.model)
    group = max(1, len(layers) // 8)  # at most about 8 cascade steps
    checks = sanity_check(ctx.model, inputs, target, checked, seed=ctx.seed, threshold=threshold, group=group)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    write_report(checks, ctx.out_dir / "sanity_check.json")
    flags = {name: ([] if c.passed else [FAILS_FLAG]) for name, c in checks.items()}
    summary = {name: {"passed": c.passed, "final_spearman": round(c.spearman[-1], 4),
                      "final_ssim": round(c.ssim[-1], 4)} for name, c in checks.items()}
    return flags, {"threshold": threshold, "cascade_group": group, "n_images": len(inputs),
                   "report": "sanity_check.json", "methods": summary}


def display_scale(size: int, minimum: int = 128) -> int:
    """Integer upscaling so that small images show at least ``minimum`` px."""
    return max(1, -(-minimum // size))
