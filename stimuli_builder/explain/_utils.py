"""Helpers shared by the explanation methods: targets, scores, input gradients."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["Target", "as_targets", "class_scores", "input_gradients"]

Target = int | Sequence[int] | torch.Tensor


def as_targets(target: Target, n: int, device: torch.device) -> torch.Tensor:
    """One class index per input, as a LongTensor on ``device``."""
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target: expected one class index or {n} of them, got {t.numel()}")
    return t.to(device)


def class_scores(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The model's output for each input's target class, shape (N,)."""
    out = model(inputs)
    if int(target.min()) < 0 or int(target.max()) >= out.shape[1]:
        raise ValueError(f"target class out of range: the model has {out.shape[1]} outputs")
    return out.gather(1, target[:, None]).squeeze(1)


def input_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                    batch_size: int = 64) -> torch.Tensor:
    """d score[target] / d input, computed ``batch_size`` inputs at a time."""
    grads = []
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].detach().requires_grad_(True)
        score = class_scores(model, x, target[start:start + batch_size])
        grads.append(torch.autograd.grad(score.sum(), x)[0])
    return torch.cat(grads)
