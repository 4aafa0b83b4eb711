"""Occlusion (Zeiler & Fergus 2014): the score drop when a sliding square is greyed out."""

from __future__ import annotations

import torch
from torch import nn

from ._utils import Target, as_targets, class_scores

__all__ = ["occlusion"]


@torch.no_grad()
def occlusion(model: nn.Module, inputs: torch.Tensor, target: Target, window: int | None = None,
              stride: int | None = None, value: float = 0.5, batch_size: int = 64) -> torch.Tensor:
    """Per pixel, the mean of f(x) - f(x with a covering window set to ``value``); shaped like ``inputs``.

    ``window`` defaults to 1/8 of the image side, ``stride`` to half the window.
    """
    n, c, h, w = inputs.shape
    window = window or max(2, min(h, w) // 8)
    stride = stride or max(1, window // 2)
    t = as_targets(target, n, inputs.device)
    full = class_scores(model, inputs, t)
    ys = list(range(0, max(1, h - window) + 1, stride))
    xs = list(range(0, max(1, w - window) + 1, stride))
    if ys[-1] + window < h:
        ys.append(h - window)
    if xs[-1] + window < w:
        xs.append(w - window)
    boxes = [(y, x) for y in ys for x in xs]
    total = torch.zeros((n, 1, h, w), dtype=inputs.dtype, device=inputs.device)
    count = torch.zeros((1, 1, h, w), dtype=inputs.dtype, device=inputs.device)
    per_pass = max(1, batch_size // n)
    for start in range(0, len(boxes), per_pass):
        chunk = boxes[start:start + per_pass]
        batch = inputs.unsqueeze(0).repeat(len(chunk), 1, 1, 1, 1)
        for k, (y, x) in enumerate(chunk):
            batch[k, :, :, y:y + window, x:x + window] = value
        drop = full.repeat(len(chunk)) - class_scores(model, batch.reshape(-1, c, h, w), t.repeat(len(chunk)))
        drop = drop.reshape(len(chunk), n)
        for k, (y, x) in enumerate(chunk):
            total[:, :, y:y + window, x:x + window] += drop[k].view(n, 1, 1, 1)
            count[:, :, y:y + window, x:x + window] += 1
    return (total / count.clamp(min=1)).expand(n, c, h, w).contiguous()
