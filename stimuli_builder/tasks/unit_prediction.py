"""``unit_prediction`` (Borowski et al. 2021; Zimmermann et al. 2023).

A participant sees references for a unit (natural exemplars, feature visualizations, or
nothing) and answers which of two query images activates the unit more. References come
from the extremes (top-k and bottom-k natural images; maximizing and minimizing feature
visualizations); queries from near the 90th and 10th activation percentiles, never shown as
references. Catch items reuse the strongest reference image as the right answer.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from ..exemplars import LayerExemplars, mine
from ..featurevis import render
from ..featurevis.render import DEFAULTS as FV_DEFAULTS
from ..manifest import Condition, ImageGroup, Manifest, Option
from ..models import check_units
from .common import BuildContext, SetWriter, choose_units, make_item

__all__ = ["build_unit_prediction", "CONDITIONS"]

CONDITIONS = ("feature_vis", "natural", "none")
PROMPT = "Which image makes the unit respond more strongly?"
_DESCRIPTIONS = {
    "feature_vis": "Synthetic images optimized to drive the unit up (strongly) or down (weakly).",
    "natural": "Natural images from the dataset that drive the unit most and least.",
    "none": "No reference images: the participant guesses from the queries alone.",
}


def _conditions(names: Sequence[str]) -> list[Condition]:
    out = []
    for name in names:
        if name == "feature_vis":
            out.append(Condition(name=name, role="method", baselines=[n for n in ("natural", "none") if n in names],
                                 description=_DESCRIPTIONS[name]))
        else:
            out.append(Condition(name=name, role="baseline", description=_DESCRIPTIONS[name]))
    return out


def _pairs(ex: LayerExemplars, channel: int, n: int, quantiles: tuple[float, float],
           exclude: set[int]) -> list[tuple[int, int]]:
    lows = ex.near_quantile(channel, quantiles[0], n, exclude)
    highs = ex.near_quantile(channel, quantiles[1], n, exclude | set(lows))
    if not lows or not highs:
        raise ValueError(f"too few images to choose queries for channel {channel} of '{ex.layer}'")
    return [(highs[i % len(highs)], lows[i % len(lows)]) for i in range(n)]


def build_unit_prediction(ctx: BuildContext, layers: Sequence[str], units: Optional[Sequence[tuple[str, int]]] = None,
                          n_units: int = 6, n_refs: int = 9, n_fv: int = 9, n_pairs: int = 2,
                          quantiles: tuple[float, float] = (0.1, 0.9), n_practice: int = 2, n_catch: int = 4,
                          conditions: Sequence[str] = CONDITIONS, fv_steps: int = FV_DEFAULTS["steps"],
                          fv_size: Optional[int] = None, name: str = "unit-prediction",
                          **fv_params: Any) -> Manifest:
    """Build a ``unit_prediction`` stimulus set in ``ctx.out_dir``; return its manifest.

    ``units`` (layer, channel) pairs, or ``n_units`` random live channels per layer.
    ``n_refs`` natural references and ``n_fv`` feature visualizations per group
    ("Strongly activating" / "Weakly activating"); ``n_pairs`` query pairs per unit and
    condition, drawn near ``quantiles``. Extra keywords go to :func:`featurevis.render`.
    """
    bad = set(conditions) - set(CONDITIONS)
    if bad:
        raise ValueError(f"unknown unit_prediction condition(s) {sorted(bad)}; choose from {CONDITIONS}")
    if not layers and not units:
        raise ValueError("give at least one layer or unit")
    size = int(ctx.images.images.shape[-1])
    layers = sorted({u[0] for u in units}) if units else list(layers)
    check_units(ctx.model, list(units) if units else [(l, 0) for l in layers], size)
    ex = mine(ctx.model, ctx.images.images, layers, k=n_refs + 1, seed=ctx.seed, progress=ctx.progress)
    rng = ctx.rng(1)
    main = list(units) if units else choose_units(ex, layers, n_units, rng)
    practice = choose_units(ex, layers[:1], n_practice, rng, exclude=main) if n_practice else []
    fv_size = fv_size or size

    fv_images: dict[tuple[str, int, int], list[torch.Tensor]] = {}
    fv_prov: dict[str, Any] = {}
    if "feature_vis" in conditions and n_fv > 0:
        requests = [(l, c, s) for (l, c) in main for s in (1, -1) for _ in range(n_fv)]
        fv_params.setdefault("diversity", 0.1 if n_fv > 1 else 0.0)
        result = render(ctx.model, requests, size=fv_size, steps=fv_steps, seed=ctx.seed, progress=ctx.progress,
                        **fv_params)
        for (l, c, s), img in zip(requests, result.images):
            fv_images.setdefault((l, c, s), []).append(img)
        fv_prov = result.provenance
        fv_prov.pop("units", None)

    out = SetWriter(ctx.out_dir)
    image = lambda idx: out.image(ctx.images.images[idx])  # noqa: E731

    def natural_context(layer: str, channel: int) -> list[ImageGroup]:
        e = ex[layer]
        return [ImageGroup(label="Strongly activating", images=[image(int(i)) for i in e.top_index[channel, :n_refs]]),
                ImageGroup(label="Weakly activating", images=[image(int(i)) for i in e.bottom_index[channel, :n_refs]])]

    def context(cond: str, layer: str, channel: int) -> list[ImageGroup]:
        if cond == "natural":
            return natural_context(layer, channel)
        if cond == "feature_vis":
            return [ImageGroup(label="Strongly activating", images=[out.image(t) for t in fv_images[(layer, channel, 1)]]),
                    ImageGroup(label="Weakly activating", images=[out.image(t) for t in fv_images[(layer, channel, -1)]])]
        return []

    def item(item_id: str, cond: str, layer: str, channel: int, hi: int, lo: int, ctx_groups: list[ImageGroup],
             kind: str) -> Any:
        e = ex[layer]
        act = _activations(ctx, layer, channel, [hi, lo])
        flip = bool(rng.random() < 0.5)
        order = [lo, hi] if flip else [hi, lo]
        acts = [act[1], act[0]] if flip else [act[0], act[1]]
        return make_item(id=item_id, condition=cond, family=f"{layer}:{channel}", prompt=PROMPT, context=ctx_groups,
                         options=[Option(image=image(i)) for i in order], correct=int(flip),
                         meta={"layer": layer, "channel": channel, "kind": kind, "image_index": order,
                               "activation": acts, "quantiles": list(quantiles),
                               "reference_range": [float(e.bottom_value[channel, 0]), float(e.top_value[channel, 0])]})

    items = []
    for layer, channel in main:
        e = ex[layer]
        refs = set(e.top_index[channel].tolist()) | set(e.bottom_index[channel].tolist())
        pairs = _pairs(e, channel, n_pairs * len(conditions), quantiles, refs)
        for ci, cond in enumerate(conditions):
            for j in range(n_pairs):
                hi, lo = pairs[ci * n_pairs + j]
                items.append(item(f"{layer}:{channel}/{cond}/{j}", cond, layer, channel, hi, lo,
                                  context(cond, layer, channel), "main"))
    practice_items = []
    for layer, channel in practice:
        e = ex[layer]
        hi, lo = int(e.top_index[channel, n_refs]), int(e.bottom_index[channel, n_refs])
        practice_items.append(item(f"practice/{layer}:{channel}", "natural", layer, channel, hi, lo,
                                   natural_context(layer, channel), "practice"))
    catch_items = []
    for n in range(n_catch):
        layer, channel = main[n % len(main)]
        e = ex[layer]
        hi, lo = int(e.top_index[channel, 0]), int(e.bottom_index[channel, 0])
        catch_items.append(item(f"catch/{layer}:{channel}/{n}", "natural", layer, channel, hi, lo,
                                natural_context(layer, channel), "catch"))

    params = {"layers": list(layers), "units": [list(u) for u in main], "practice_units": [list(u) for u in practice],
              "n_refs": n_refs, "n_fv": n_fv, "n_pairs": n_pairs, "quantiles": list(quantiles),
              "conditions": list(conditions), "activation": "spatial mean of the channel",
              "exemplars": {"method": "streaming top-k/bottom-k + reservoir quantiles", "k": n_refs + 1,
                            "n_images": ex[layers[0]].n_images, "reservoir": 10_000},
              "feature_vis": fv_prov}
    manifest = Manifest(name=name, task="unit_prediction", conditions=_conditions(list(conditions)), items=items,
                        practice_items=practice_items, catch_items=catch_items,
                        description="Which of two images drives the unit more, given references.",
                        provenance=ctx.provenance("unit_prediction", **params))
    return out.finish(manifest)


@torch.no_grad()
def _activations(ctx: BuildContext, layer: str, channel: int, indices: list[int]) -> list[float]:
    from ..exemplars import spatial_mean
    from ..models import record_layers

    with record_layers(ctx.model, [layer], transform=spatial_mean) as acts:
        ctx.model(ctx.images.images[indices].to(ctx.device))
    return [float(v) for v in acts[layer][:, channel]]
