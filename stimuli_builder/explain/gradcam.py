"""Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of dy/dA_k."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import record_layers
from ._utils import Target, as_targets, class_scores

__all__ = ["gradcam", "last_spatial_layer"]


def last_spatial_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """Name of the last module whose output is a spatial map (N, C, H, W) with H, W > 1."""
    names = [n for n, _ in model.named_modules() if n]
    with record_layers(model, names) as acts, torch.no_grad():
        model(inputs[:1])
    spatial = [n for n in names if n in acts and acts[n].ndim == 4 and acts[n].shape[-1] > 1]
    if not spatial:
        raise ValueError("gradcam: the model has no layer with a spatial output; pass layer=")
    order = list(acts)  # hooks fire in execution order
    return max(spatial, key=order.index)


def gradcam(model: nn.Module, inputs: torch.Tensor, target: Target, layer: str | None = None,
            relu: bool = True, upsample: bool = True, batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM maps (N, 1, H, W) of ``layer`` (default: the last spatial one), upsampled to the input."""
    layer = layer or last_spatial_layer(model, inputs)
    t = as_targets(target, len(inputs), inputs.device)
    maps = []
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size]
        with record_layers(model, [layer], detach=False) as acts:
            score = class_scores(model, x, t[start:start + batch_size])
            a = acts[layer]
            grad = torch.autograd.grad(score.sum(), a)[0]
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        cam = (alpha * a).sum(1, keepdim=True).detach()
        maps.append(F.relu(cam) if relu else cam)
    cam = torch.cat(maps)
    if upsample:
        cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    return cam
