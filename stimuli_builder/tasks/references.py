"""References for unit tasks: natural exemplars and feature visualizations of chosen units.

Shared by ``unit_prediction`` and ``causal_occlusion``: one exemplar pass, the units, and
the feature visualizations (maximizing and minimizing, several per unit) in one batched
render; ``context(condition, unit)`` gives the labelled image groups a participant sees.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from ..exemplars import LayerExemplars, mine, spatial_mean
from ..featurevis import render
from ..manifest import Condition, ImageGroup
from ..models import check_units, record_layers
from .common import BuildContext, SetWriter, choose_units

__all__ = ["UNIT_CONDITIONS", "UnitReferences", "unit_conditions", "unit_activations"]

UNIT_CONDITIONS = ("feature_vis", "natural", "none")
_DESCRIPTIONS = {
    "feature_vis": "Synthetic images optimized to drive the unit up (strongly) or down (weakly).",
    "natural": "Natural images from the dataset that drive the unit most and least.",
    "none": "No reference images: the participant answers from the options alone.",
}


def unit_conditions(names: Sequence[str]) -> list[Condition]:
    """feature_vis is the method, compared with natural and none (the baselines)."""
    bad = set(names) - set(UNIT_CONDITIONS)
    if bad:
        raise ValueError(f"unknown condition(s) {sorted(bad)}; choose from {UNIT_CONDITIONS}")
    out = []
    for name in names:
        if name == "feature_vis":
            out.append(Condition(name=name, role="method", baselines=[n for n in ("natural", "none") if n in names],
                                 description=_DESCRIPTIONS[name]))
        else:
            out.append(Condition(name=name, role="baseline", description=_DESCRIPTIONS[name]))
    return out


@torch.no_grad()
def unit_activations(ctx: BuildContext, layer: str, channel: int, images: torch.Tensor) -> list[float]:
    """The unit's activation (spatial mean) on each image."""
    with record_layers(ctx.model, [layer], transform=spatial_mean) as acts:
        ctx.model(images.to(ctx.device))
    return [float(v) for v in acts[layer][:, channel]]


class UnitReferences:
    """Exemplars, chosen units and feature visualizations for a unit task."""

    def __init__(self, ctx: BuildContext, out: SetWriter, layers: Sequence[str],
                 units: Optional[Sequence[tuple[str, int]]], n_units: int, n_refs: int, n_fv: int,
                 n_practice: int, conditions: Sequence[str], fv_steps: int, fv_size: Optional[int],
                 extra_k: int = 1, **fv_params: Any) -> None:
        if not layers and not units:
            raise ValueError("give at least one layer or unit")
        self.ctx, self.out, self.n_refs = ctx, out, n_refs
        size = int(ctx.images.images.shape[-1])
        self.layers = sorted({u[0] for u in units}) if units else list(layers)
        check_units(ctx.model, list(units) if units else [(l, 0) for l in self.layers], size)
        self.exemplars: dict[str, LayerExemplars] = mine(ctx.model, ctx.images.images, self.layers,
                                                        k=n_refs + extra_k, seed=ctx.seed, progress=ctx.progress)
        rng = ctx.rng(1)
        self.units = list(units) if units else choose_units(self.exemplars, self.layers, n_units, rng)
        self.practice = (choose_units(self.exemplars, self.layers[:1], n_practice, rng, exclude=self.units)
                         if n_practice else [])
        self.fv: dict[tuple[str, int, int], list[torch.Tensor]] = {}
        self.fv_provenance: dict[str, Any] = {}
        if "feature_vis" in conditions and n_fv > 0:
            requests = [(l, c, s) for (l, c) in self.units for s in (1, -1) for _ in range(n_fv)]
            fv_params.setdefault("diversity", 0.1 if n_fv > 1 else 0.0)
            result = render(ctx.model, requests, size=fv_size or size, steps=fv_steps, seed=ctx.seed,
                            progress=ctx.progress, **fv_params)
            for (l, c, s), img in zip(requests, result.images):
                self.fv.setdefault((l, c, s), []).append(img)
            self.fv_provenance = {k: v for k, v in result.provenance.items() if k != "units"}

    def reference_indices(self, layer: str, channel: int) -> set[int]:
        """Image indices used as references (all of top/bottom k, the spare one included)."""
        e = self.exemplars[layer]
        return set(e.top_index[channel].tolist()) | set(e.bottom_index[channel].tolist())

    def natural(self, layer: str, channel: int) -> list[ImageGroup]:
        """Top and bottom natural exemplars."""
        e, k = self.exemplars[layer], self.n_refs
        image = lambda i: self.out.image(self.ctx.images.images[int(i)])  # noqa: E731
        return [ImageGroup(label="Strongly activating", images=[image(i) for i in e.top_index[channel, :k]]),
                ImageGroup(label="Weakly activating", images=[image(i) for i in e.bottom_index[channel, :k]])]

    def context(self, condition: str, layer: str, channel: int) -> list[ImageGroup]:
        """The labelled reference groups shown in ``condition``."""
        if condition == "natural":
            return self.natural(layer, channel)
        if condition == "feature_vis":
            return [ImageGroup(label="Strongly activating",
                               images=[self.out.image(t) for t in self.fv[(layer, channel, 1)]]),
                    ImageGroup(label="Weakly activating",
                               images=[self.out.image(t) for t in self.fv[(layer, channel, -1)]])]
        return []

    def provenance(self) -> dict[str, Any]:
        """What the references were built from."""
        first = self.exemplars[self.layers[0]]
        return {"layers": self.layers, "units": [list(u) for u in self.units],
                "practice_units": [list(u) for u in self.practice], "n_refs": self.n_refs,
                "activation": "spatial mean of the channel",
                "exemplars": {"method": "streaming top-k/bottom-k + reservoir quantiles",
                              "n_images": first.n_images, "reservoir": int(len(first.sample_index))},
                "feature_vis": self.fv_provenance}
