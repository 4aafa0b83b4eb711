"""``forward_simulation`` (Hase & Bansal 2020): given an image and an explanation, which of
two classes did the model predict?

Options are the model's top class and its runner-up (text). Conditions: each explanation
method (role ``method``); ``none`` (the image only), ``edge`` (Sobel edges) and
``random_map`` (role ``baseline``); for each method its manipulated twins (role
``manipulated``): ``<m>_random_model`` (every layer re-drawn), ``<m>_inverted`` (1 - map)
and, when a label-permuted model is given, ``<m>_permuted_labels``. Methods that fail the
randomization sanity check carry the flag ``fails_randomization_check``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from .. import explain
from ..datasets import to_pil
from ..manifest import Condition, ImageGroup, Manifest, Option
from .common import BuildContext, SetWriter, make_item
from .explanations import (compute_maps, display_scale, fully_randomized, method_functions, run_sanity_check,
                           sample_inputs)

__all__ = ["build_forward_simulation", "DEFAULT_METHODS"]

DEFAULT_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "gradcam", "occlusion")
PROMPT = "Which class did the model predict for this image?"
BASELINES = ("none", "edge", "random_map")
_BASELINE_TEXT = {"none": "The image alone, no explanation.",
                  "edge": "Sobel edge map of the image (ignores the model).",
                  "random_map": "A smooth random map (ignores the model and the image)."}


def build_forward_simulation(ctx: BuildContext, methods: Sequence[str] = DEFAULT_METHODS, n_inputs: int = 24,
                             permuted_model: Optional[nn.Module] = None, target_layer: Optional[str] = None,
                             ig_steps: int = 32, smoothgrad_samples: int = 16,
                             manipulations: Sequence[str] = ("random_model", "inverted", "permuted_labels"),
                             n_practice: int = 2, n_catch: int = 4, sanity_inputs: int = 8,
                             sanity_threshold: float = 0.5, name: str = "forward-simulation") -> Manifest:
    """Build a ``forward_simulation`` stimulus set in ``ctx.out_dir``; return its manifest."""
    fns = method_functions(methods, ctx, target_layer, ig_steps, smoothgrad_samples)
    names = ctx.output_names()
    rng = ctx.rng(2)
    total = n_inputs + n_practice + n_catch
    chosen, x = sample_inputs(ctx, rng, total, "forward_simulation")
    with torch.no_grad():
        probs = torch.softmax(ctx.model(x), dim=1).cpu()
    ranked = probs.argsort(dim=1, descending=True)
    pred = ranked[:, 0]
    target = pred.to(ctx.device)

    main = slice(0, n_inputs)
    xm, tm = x[main], target[main]
    views: dict[str, torch.Tensor] = {}
    trained = compute_maps(fns, ctx.model, xm, tm)
    views.update(trained)
    if "random_model" in manipulations:
        random_model = fully_randomized(ctx.model, ctx.seed)
        views.update({f"{m}_random_model": v for m, v in compute_maps(fns, random_model, xm, tm).items()})
    if "inverted" in manipulations:
        views.update({f"{m}_inverted": explain.invert(v) for m, v in trained.items()})
    if "permuted_labels" in manipulations and permuted_model is not None:
        views.update({f"{m}_permuted_labels": v for m, v in compute_maps(fns, permuted_model, xm, tm).items()})
    views["edge"] = explain.to_map(explain.edge(ctx.model, xm, tm)).cpu()
    views["random_map"] = explain.to_map(explain.random_map(ctx.model, xm, tm, seed=ctx.seed)).cpu()

    k = min(sanity_inputs, n_inputs)
    flags, sanity = run_sanity_check(ctx, fns, xm[:k], tm[:k], sanity_threshold)

    conditions = [Condition(name=m, role="method", baselines=list(BASELINES), flags=flags.get(m, []),
                            description=f"{m} map of the predicted class, over the image in grey.") for m in methods]
    conditions += [Condition(name=b, role="baseline", flags=flags.get(b, []), description=_BASELINE_TEXT[b])
                   for b in BASELINES]
    for view in views:
        if view not in methods and view not in BASELINES:
            base = next(m for m in methods if view.startswith(m + "_"))
            what = view[len(base) + 1:]
            conditions.append(Condition(name=view, role="manipulated",
                                        description=f"{base} map, manipulated: {what.replace('_', ' ')}."))

    out = SetWriter(ctx.out_dir)
    scale = display_scale(int(x.shape[-1]))
    big = lambda img: to_pil(img).resize((img.shape[-1] * scale, img.shape[-2] * scale))  # noqa: E731

    def item(i: int, cond: str, heat: Optional[torch.Tensor], kind: str, distractor: int) -> Any:
        groups = [ImageGroup(label="Image", images=[out.image(big(x[i].cpu()))])]
        if heat is not None:
            groups.append(ImageGroup(label="Explanation", images=[out.image(explain.overlay(x[i], heat, scale=scale))]))
        flip = bool(rng.random() < 0.5)
        classes = [distractor, int(pred[i])] if flip else [int(pred[i]), distractor]
        idx = int(chosen[i])
        return make_item(id=f"{kind}/{idx}/{cond}" if kind != "main" else f"{idx}/{cond}", condition=cond,
                         family=f"image:{ctx.images.paths[idx]}", prompt=PROMPT, context=groups,
                         options=[Option(text=names[c]) for c in classes], correct=int(flip),
                         meta={"kind": kind, "image_index": idx, "predicted": int(pred[i]),
                               "distractor": distractor, "true_label": int(ctx.images.labels[idx]),
                               "probabilities": [round(float(probs[i, c]), 4) for c in classes]})

    items = [item(i, cond, None if cond == "none" else views[cond][i], "main", int(ranked[i, 1]))
             for cond in [c.name for c in conditions] for i in range(n_inputs)]
    practice = [item(n_inputs + j, "none", None, "practice", int(ranked[n_inputs + j, 1])) for j in range(n_practice)]
    catch = [item(n_inputs + n_practice + j, "none", None, "catch", int(ranked[n_inputs + n_practice + j, -1]))
             for j in range(n_catch)]
    params = {"methods": list(methods), "n_inputs": n_inputs, "target": "the model's predicted class",
              "distractor": "the runner-up class (catch items: the least likely class)",
              "target_layer": target_layer, "ig_steps": ig_steps, "ig_baseline": "black",
              "smoothgrad_samples": smoothgrad_samples, "smoothgrad_noise": 0.15,
              "occlusion": {"window": "1/8 of the side", "stride": "half the window", "value": 0.5},
              "manipulations": list(manipulations), "permuted_model": permuted_model is not None,
              "map": "sum over channels of |attribution|, clipped at the 99th percentile",
              "sanity_check": sanity}
    manifest = Manifest(name=name, task="forward_simulation", conditions=conditions, items=items,
                        practice_items=practice, catch_items=catch,
                        description="Which class did the model predict, given the image and an explanation?",
                        provenance=ctx.provenance("forward_simulation", **params))
    return out.finish(manifest)
