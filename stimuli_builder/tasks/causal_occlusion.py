"""``causal_occlusion`` (Zimmermann et al. 2021): which of two occluded versions of an image
keeps the unit's activation higher?

For each unit, a strongly activating image (never a reference) is occluded by a grey square
at every position of a grid; the two options are the occlusion that hurts the unit least
and the one that hurts it most. Conditions as in ``unit_prediction``: natural exemplars,
feature visualizations, or no references.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from ..featurevis.render import DEFAULTS as FV_DEFAULTS
from ..manifest import Manifest, Option
from .common import BuildContext, SetWriter, make_item
from .references import UNIT_CONDITIONS, UnitReferences, unit_activations, unit_conditions

__all__ = ["build_causal_occlusion", "occlusion_grid"]

PROMPT = "Which image makes the unit respond more strongly?"


def occlusion_grid(image: torch.Tensor, patch: int, stride: int, value: float = 0.5) -> tuple[torch.Tensor, list]:
    """Every occluded copy of ``image`` (3, H, W) on a grid: (K, 3, H, W) and the (y, x) corners."""
    h, w = image.shape[-2:]
    corners = [(y, x) for y in range(0, h - patch + 1, stride) for x in range(0, w - patch + 1, stride)]
    batch = image.unsqueeze(0).repeat(len(corners), 1, 1, 1)
    for k, (y, x) in enumerate(corners):
        batch[k, :, y:y + patch, x:x + patch] = value
    return batch, corners


def build_causal_occlusion(ctx: BuildContext, layers: Sequence[str] = (),
                           units: Optional[Sequence[tuple[str, int]]] = None, n_units: int = 6, n_refs: int = 9,
                           n_fv: int = 9, n_images: int = 2, patch_fraction: float = 0.4, n_practice: int = 2,
                           n_catch: int = 4, conditions: Sequence[str] = UNIT_CONDITIONS,
                           fv_steps: int = FV_DEFAULTS["steps"], fv_size: Optional[int] = None,
                           name: str = "causal-occlusion", **fv_params: Any) -> Manifest:
    """Build a ``causal_occlusion`` set: ``n_images`` occluded pairs per unit and condition."""
    conds = unit_conditions(conditions)
    out = SetWriter(ctx.out_dir)
    extra = n_images * len(conditions) + 2
    refs = UnitReferences(ctx, out, layers, units, n_units, n_refs, n_fv, n_practice, conditions, fv_steps,
                          fv_size, extra_k=extra, **fv_params)
    size = int(ctx.images.images.shape[-1])
    patch = max(2, round(size * patch_fraction))
    stride = max(1, patch // 2)
    rng = ctx.rng(4)

    def item(item_id: str, cond: str, layer: str, channel: int, index: int, kind: str, context: list) -> Any:
        occluded, corners = occlusion_grid(ctx.images.images[index], patch, stride)
        acts = torch.tensor(unit_activations(ctx, layer, channel, occluded))
        best, worst = int(acts.argmax()), int(acts.argmin())
        flip = bool(rng.random() < 0.5)
        order = [worst, best] if flip else [best, worst]
        return make_item(id=item_id, condition=cond, family=f"{layer}:{channel}", prompt=PROMPT, context=context,
                         options=[Option(image=out.image(occluded[k])) for k in order], correct=int(flip),
                         meta={"layer": layer, "channel": channel, "kind": kind, "image_index": index,
                               "occluder": [list(corners[k]) + [patch] for k in order],
                               "activation": [float(acts[k]) for k in order],
                               "unoccluded": unit_activations(ctx, layer, channel, ctx.images.images[[index]])[0]})

    items = []
    for layer, channel in refs.units:
        # strongly activating images that are not shown as references
        top = refs.exemplars[layer].top_index[channel, n_refs:].tolist()
        for ci, cond in enumerate(conditions):
            for j in range(n_images):
                index = int(top[(ci * n_images + j) % len(top)])
                items.append(item(f"{layer}:{channel}/{cond}/{j}", cond, layer, channel, index, "main",
                                  refs.context(cond, layer, channel)))
    practice = [item(f"practice/{l}:{c}", "natural", l, c, int(refs.exemplars[l].top_index[c, n_refs]), "practice",
                     refs.natural(l, c)) for l, c in refs.practice]
    catch = []
    for n in range(n_catch):  # obvious: the strongest reference itself against the weakest one
        layer, channel = refs.units[n % len(refs.units)]
        ex = refs.exemplars[layer]
        pair = [int(ex.top_index[channel, 0]), int(ex.bottom_index[channel, 0])]
        acts = unit_activations(ctx, layer, channel, ctx.images.images[pair])
        flip = bool(rng.random() < 0.5)
        order, acts = (pair[::-1], acts[::-1]) if flip else (pair, acts)
        catch.append(make_item(id=f"catch/{layer}:{channel}/{n}", condition="natural", family=f"{layer}:{channel}",
                               prompt=PROMPT, context=refs.natural(layer, channel),
                               options=[Option(image=out.image(ctx.images.images[i])) for i in order],
                               correct=int(acts[1] > acts[0]),
                               meta={"layer": layer, "channel": channel, "kind": "catch", "image_index": order,
                                     "activation": acts}))
    params = {**refs.provenance(), "n_fv": n_fv, "n_images": n_images, "patch": patch, "stride": stride,
              "occluder_value": 0.5, "conditions": list(conditions),
              "options": "the grid occlusion that keeps the activation highest vs lowest"}
    manifest = Manifest(name=name, task="causal_occlusion", conditions=conds, items=items, practice_items=practice,
                        catch_items=catch, description="Which occluded image keeps the unit's activation higher?",
                        provenance=ctx.provenance("causal_occlusion", **params))
    return out.finish(manifest)
