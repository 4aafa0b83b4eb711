"""``unit_prediction`` (Borowski et al. 2021; Zimmermann et al. 2023).

A participant sees references for a unit (natural exemplars, feature visualizations, or
nothing) and answers which of two query images activates the unit more. References come
from the extremes (top-k and bottom-k natural images; maximizing and minimizing feature
visualizations); queries from near the 90th and 10th activation percentiles, never shown as
references. Catch items reuse the strongest reference image as the right answer.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..exemplars import LayerExemplars
from ..featurevis.render import DEFAULTS as FV_DEFAULTS
from ..manifest import ImageGroup, Item, Manifest, Option
from .common import BuildContext, SetWriter, make_item
from .references import UNIT_CONDITIONS, UnitReferences, unit_activations, unit_conditions

__all__ = ["build_unit_prediction", "CONDITIONS"]

CONDITIONS = UNIT_CONDITIONS
PROMPT = "Which image makes the unit respond more strongly?"


def _pairs(ex: LayerExemplars, channel: int, n: int, quantiles: tuple[float, float],
           exclude: set[int]) -> list[tuple[int, int]]:
    lows = ex.near_quantile(channel, quantiles[0], n, exclude)
    highs = ex.near_quantile(channel, quantiles[1], n, exclude | set(lows))
    if not lows or not highs:
        raise ValueError(f"too few images to choose queries for channel {channel} of '{ex.layer}'")
    return [(highs[i % len(highs)], lows[i % len(lows)]) for i in range(n)]


def _item(ctx: BuildContext, out: SetWriter, rng: np.random.Generator, item_id: str, cond: str, layer: str,
          channel: int, hi: int, lo: int, context: list[ImageGroup], kind: str,
          quantiles: tuple[float, float]) -> Item:
    act = unit_activations(ctx, layer, channel, ctx.images.images[[hi, lo]])
    flip = bool(rng.random() < 0.5)
    order, acts = ([lo, hi], [act[1], act[0]]) if flip else ([hi, lo], act)
    correct = int(np.argmax(acts))  # the option that drives the unit more
    return make_item(id=item_id, condition=cond, family=f"{layer}:{channel}", prompt=PROMPT, context=context,
                     options=[Option(image=out.image(ctx.images.images[i])) for i in order], correct=correct,
                     meta={"layer": layer, "channel": channel, "kind": kind, "image_index": order,
                           "activation": acts, "quantiles": list(quantiles)})


def build_unit_prediction(ctx: BuildContext, layers: Sequence[str] = (),
                          units: Optional[Sequence[tuple[str, int]]] = None, n_units: int = 6, n_refs: int = 9,
                          n_fv: int = 9, n_pairs: int = 2, quantiles: tuple[float, float] = (0.1, 0.9),
                          n_practice: int = 2, n_catch: int = 4, conditions: Sequence[str] = CONDITIONS,
                          fv_steps: int = FV_DEFAULTS["steps"], fv_size: Optional[int] = None,
                          name: str = "unit-prediction", **fv_params: Any) -> Manifest:
    """Build a ``unit_prediction`` stimulus set in ``ctx.out_dir``; return its manifest.

    ``units`` (layer, channel) pairs, or ``n_units`` random live channels per layer.
    ``n_refs`` natural references and ``n_fv`` feature visualizations per group
    ("Strongly activating" / "Weakly activating"); ``n_pairs`` query pairs per unit and
    condition, drawn near ``quantiles``. Extra keywords go to :func:`featurevis.render`.
    """
    conds = unit_conditions(conditions)
    out = SetWriter(ctx.out_dir)
    refs = UnitReferences(ctx, out, layers, units, n_units, n_refs, n_fv, n_practice, conditions, fv_steps,
                          fv_size, **fv_params)
    rng = ctx.rng(3)
    items = []
    for layer, channel in refs.units:
        ex = refs.exemplars[layer]
        pairs = _pairs(ex, channel, n_pairs * len(conditions), quantiles, refs.reference_indices(layer, channel))
        for ci, cond in enumerate(conditions):
            for j in range(n_pairs):
                hi, lo = pairs[ci * n_pairs + j]
                items.append(_item(ctx, out, rng, f"{layer}:{channel}/{cond}/{j}", cond, layer, channel, hi, lo,
                                   refs.context(cond, layer, channel), "main", quantiles))
    practice = []
    for layer, channel in refs.practice:  # easy: the spare (k+1)-th best against the (k+1)-th worst
        ex = refs.exemplars[layer]
        hi, lo = int(ex.top_index[channel, n_refs]), int(ex.bottom_index[channel, n_refs])
        practice.append(_item(ctx, out, rng, f"practice/{layer}:{channel}", "natural", layer, channel, hi, lo,
                              refs.natural(layer, channel), "practice", quantiles))
    catch = []
    for n in range(n_catch):  # obvious: the strongest reference itself against the weakest
        layer, channel = refs.units[n % len(refs.units)]
        ex = refs.exemplars[layer]
        hi, lo = int(ex.top_index[channel, 0]), int(ex.bottom_index[channel, 0])
        catch.append(_item(ctx, out, rng, f"catch/{layer}:{channel}/{n}", "natural", layer, channel, hi, lo,
                           refs.natural(layer, channel), "catch", quantiles))
    params = {**refs.provenance(), "n_fv": n_fv, "n_pairs": n_pairs, "quantiles": list(quantiles),
              "conditions": list(conditions), "queries": "images nearest the quantiles, never references"}
    manifest = Manifest(name=name, task="unit_prediction", conditions=conds, items=items, practice_items=practice,
                        catch_items=catch, description="Which of two images drives the unit more, given references?",
                        provenance=ctx.provenance("unit_prediction", **params))
    return out.finish(manifest)
