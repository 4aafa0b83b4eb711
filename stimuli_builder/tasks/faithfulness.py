"""``explanation_faithfulness``: which of two maps comes from the trained model?

Options are two explanation overlays of the same image and class: one from the trained
model, one from a manipulated model. Conditions: each method against the fully randomized
model (role ``method``); each method against the label-permuted model (``manipulated``,
when that model is given); ``edge`` (role ``baseline``): the Sobel map ignores the model, so
its two options are identical and accuracy must sit at chance: the floor of the task.
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
from .forward_simulation import DEFAULT_METHODS

__all__ = ["build_explanation_faithfulness"]

PROMPT = "Which explanation comes from the trained model?"


def build_explanation_faithfulness(ctx: BuildContext, methods: Sequence[str] = DEFAULT_METHODS, n_inputs: int = 12,
                                   permuted_model: Optional[nn.Module] = None, target_layer: Optional[str] = None,
                                   ig_steps: int = 32, smoothgrad_samples: int = 16, n_practice: int = 2,
                                   n_catch: int = 4, sanity_inputs: int = 8,
                                   name: str = "explanation-faithfulness") -> Manifest:
    """Build an ``explanation_faithfulness`` set in ``ctx.out_dir``; return its manifest."""
    fns = method_functions(methods, ctx, target_layer, ig_steps, smoothgrad_samples)
    rng = ctx.rng(5)
    total = n_inputs + n_practice + n_catch
    chosen, x = sample_inputs(ctx, rng, total, "explanation_faithfulness")
    with torch.no_grad():
        target = ctx.model(x).argmax(1)
    trained = compute_maps(fns, ctx.model, x, target)
    rivals: dict[str, tuple[dict[str, torch.Tensor], str]] = {"": (compute_maps(fns, fully_randomized(ctx.model, ctx.seed), x, target), "random_model")}
    if permuted_model is not None:
        rivals["_permuted_labels"] = (compute_maps(fns, permuted_model, x, target), "permuted_labels")
    edge = explain.to_map(explain.edge(ctx.model, x, target)).cpu()
    flags, sanity = run_sanity_check(ctx, fns, x[:min(sanity_inputs, n_inputs)], target[:min(sanity_inputs, n_inputs)])

    conditions = [Condition(name=m, role="method", baselines=["edge"], flags=flags.get(m, []),
                            description=f"{m}: trained model vs the fully randomized model.") for m in methods]
    conditions.append(Condition(name="edge", role="baseline", flags=flags.get("edge", []),
                                description="Sobel edges: both options identical (model-independent); chance floor."))
    if permuted_model is not None:
        conditions += [Condition(name=f"{m}_permuted_labels", role="manipulated",
                                 description=f"{m}: trained model vs the model trained on permuted labels.")
                       for m in methods]
    out = SetWriter(ctx.out_dir)
    scale = display_scale(int(x.shape[-1]))
    noise = torch.rand((total, *x.shape[-2:]), generator=torch.Generator().manual_seed(ctx.seed))

    def item(i: int, cond: str, real: torch.Tensor, fake: torch.Tensor, kind: str, rival: str) -> Any:
        flip = bool(rng.random() < 0.5)
        pair = [fake, real] if flip else [real, fake]
        image = to_pil(x[i]).resize((x.shape[-1] * scale, x.shape[-2] * scale))
        return make_item(id=f"{kind}/{int(chosen[i])}/{cond}" if kind != "main" else f"{int(chosen[i])}/{cond}",
                         condition=cond, family=f"image:{ctx.images.paths[int(chosen[i])]}", prompt=PROMPT,
                         context=[ImageGroup(label="Image", images=[out.image(image)])],
                         options=[Option(image=out.image(explain.overlay(x[i], m, scale=scale))) for m in pair],
                         correct=int(flip), meta={"kind": kind, "image_index": int(chosen[i]), "rival": rival,
                                                  "target": int(target[i])})

    items = []
    for m in methods:
        for suffix, (maps, rival) in rivals.items():
            items += [item(i, m + suffix, trained[m][i], maps[m][i], "main", rival) for i in range(n_inputs)]
    items += [item(i, "edge", edge[i], edge[i], "main", "random_model") for i in range(n_inputs)]
    first = methods[0]
    practice = [item(n_inputs + j, first, trained[first][n_inputs + j], rivals[""][0][first][n_inputs + j],
                     "practice", "random_model") for j in range(n_practice)]
    catch = [item(i, first, trained[first][i], noise[i], "catch", "pixel_noise")  # obvious: noise vs a map
             for i in range(n_inputs + n_practice, total)]
    params = {"methods": list(methods), "n_inputs": n_inputs, "target": "the model's predicted class",
              "rivals": [r for _, r in rivals.values()], "ig_steps": ig_steps, "smoothgrad_samples": smoothgrad_samples,
              "target_layer": target_layer, "catch": "trained map vs uniform pixel noise", "sanity_check": sanity}
    manifest = Manifest(name=name, task="explanation_faithfulness", conditions=conditions, items=items,
                        practice_items=practice, catch_items=catch,
                        description="Which of two saliency maps comes from the trained model?",
                        provenance=ctx.provenance("explanation_faithfulness", **params))
    return out.finish(manifest)
