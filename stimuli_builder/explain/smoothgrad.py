"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input."""

from __future__ import annotations

import torch
from torch import nn

from ._utils import Target, as_targets, input_gradients

__all__ = ["smoothgrad"]


def smoothgrad(model: nn.Module, inputs: torch.Tensor, target: Target, n_samples: int = 50,
               noise: float = 0.15, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """Mean gradient over ``n_samples`` copies with Gaussian noise of sd ``noise`` x (max - min) per input."""
    if n_samples < 1:
        raise ValueError("smoothgrad: n_samples must be at least 1")
    t = as_targets(target, len(inputs), inputs.device)
    gen = torch.Generator().manual_seed(seed)
    span = (inputs.flatten(1).max(1).values - inputs.flatten(1).min(1).values).view(-1, 1, 1, 1)
    sd = noise * span
    total = torch.zeros_like(inputs)
    per_round = max(1, batch_size // max(1, len(inputs)))
    done = 0
    while done < n_samples:  # several noisy copies of every input per batched pass
        reps = min(per_round, n_samples - done)
        eps = torch.randn((reps, *inputs.shape), generator=gen).to(inputs)
        noisy = (inputs.unsqueeze(0) + eps * sd.unsqueeze(0)).reshape(-1, *inputs.shape[1:])
        grads = input_gradients(model, noisy, t.repeat(reps), batch_size)
        total += grads.reshape(reps, *inputs.shape).sum(0)
        done += reps
    return total / n_samples
