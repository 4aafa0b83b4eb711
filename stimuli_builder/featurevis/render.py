"""The optimization loop: many units at once, each image with its own objective and transforms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models import get_layer, model_device, record_layers
from .objectives import Objective, diversity as diversity_objective, unit_objectives
from .param import fft_image, pixel_image
from .redirect import redirected_relu
from .transform import Transform, compose, standard_transforms

__all__ = ["DEFAULTS", "FeatureVisResult", "render"]

DEFAULTS: dict[str, Any] = {
    "size": 128, "steps": 512, "lr": 0.05, "param": "fft", "decorrelate": True, "sd": 0.01,
    "decay_power": 1.0, "transforms": "standard", "diversity": 0.0, "redirect_steps": 16,
    "batch_size": 32,
}


@dataclass
class FeatureVisResult:
    """Rendered images (N, 3, size, size) in [0, 1], final unit activations, provenance."""

    images: torch.Tensor
    activations: torch.Tensor
    provenance: dict[str, Any] = field(default_factory=dict)


def _unit_values(model: nn.Module, images: torch.Tensor, units: Sequence[tuple[str, int]]) -> torch.Tensor:
    objective = unit_objectives(units)
    with record_layers(model, sorted(objective.layers)) as acts, torch.no_grad():
        model(images)
        return -objective(acts)


def _render_batch(model: nn.Module, units: Sequence[tuple[str, int]], signs: Sequence[float],
                  groups: Sequence[int], seed: int, cfg: dict[str, Any], transform: Optional[Transform],
                  bar: Any) -> tuple[torch.Tensor, torch.Tensor]:
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    maker = fft_image if cfg["param"] == "fft" else pixel_image
    kwargs = {"decay_power": cfg["decay_power"]} if cfg["param"] == "fft" else {}
    params, make_image = maker(len(units), cfg["size"], gen, sd=cfg["sd"], decorrelate=cfg["decorrelate"],
                               device=device, **kwargs)
    objective: Objective = unit_objectives(units, signs)
    if cfg["diversity"]:
        first_layer = sorted(objective.layers)[0]
        objective = objective + cfg["diversity"] * diversity_objective(first_layer, groups)
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    with record_layers(model, sorted(objective.layers), detach=False) as acts:
        for step in range(cfg["steps"]):
            image = make_image()
            if transform is not None:
                image = transform(image, gen)
            with redirected_relu(model, active=step < cfg["redirect_steps"]):
                model(image)
            loss = objective(acts).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
    with torch.no_grad():
        final = make_image().detach()
    return final, _unit_values(model, final, units)


def render(model: nn.Module, units: Sequence[tuple], size: int = DEFAULTS["size"],
           steps: int = DEFAULTS["steps"], seed: int = 0, progress: bool = False,
           **params: Any) -> FeatureVisResult:
    """Feature visualizations of ``units`` [(layer, channel) or (layer, channel, sign)], batched.

    Image i maximizes (sign +1, the default) or minimizes (-1) the spatial mean of its own
    unit, under its own random transforms. Parameters (defaults in :data:`DEFAULTS`): ``lr``,
    ``param`` ('fft' or 'pixel'), ``decorrelate``, ``sd``, ``decay_power``, ``transforms``
    ('standard', 'none' or a list of Transform), ``diversity`` (weight; images of the same unit
    are pushed apart), ``redirect_steps`` (ReLU gradient redirection for the first steps),
    ``batch_size``. Returns images in [0, 1] and each unit's activation on its final image
    (untransformed, sign not applied).
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"render: unknown parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **params, "size": int(size), "steps": int(steps)}
    if not units:
        raise ValueError("render: no units given")
    if cfg["param"] not in ("fft", "pixel"):
        raise ValueError(f"render: param must be 'fft' or 'pixel', not {cfg['param']!r}")
    pairs = [(str(u[0]), int(u[1])) for u in units]
    signs = [float(u[2]) if len(u) > 2 else 1.0 for u in units]
    for layer in {p[0] for p in pairs}:
        get_layer(model, layer)
    tf = cfg["transforms"]
    transforms = standard_transforms(cfg["size"]) if tf == "standard" else [] if tf in ("none", None) else list(tf)
    transform = compose(transforms) if transforms else None
    group_of: dict[tuple, int] = {}
    groups = [group_of.setdefault((p, s), len(group_of)) for p, s in zip(pairs, signs)]
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    images, values = [], []
    bs = int(cfg["batch_size"])
    n_batches = (len(pairs) + bs - 1) // bs
    try:
        with tqdm(total=n_batches * cfg["steps"], desc="feature visualization", disable=not progress,
                  leave=False) as bar:
            for b, start in enumerate(range(0, len(pairs), bs)):
                sl = slice(start, start + bs)
                img, val = _render_batch(model, pairs[sl], signs[sl], groups[sl], seed + b, cfg, transform, bar)
                images.append(img)
                values.append(val)
    finally:
        for p, flag in zip(model.parameters(), requires):
            p.requires_grad_(flag)
    prov = {k: v for k, v in cfg.items() if k != "transforms"}
    prov.update(seed=seed, transforms=transform.description if transform else "none",
                units=[list(p) + [s] for p, s in zip(pairs, signs)], optimizer="Adam",
                activation="spatial mean of the channel")
    return FeatureVisResult(torch.cat(images).cpu(), torch.cat(values).cpu(), prov)
