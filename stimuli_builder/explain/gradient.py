"""Vanilla gradient (Simonyan et al. 2014): d f_target(x) / dx."""

from __future__ import annotations

import torch
from torch import nn

from ._utils import Target, as_targets, input_gradients

__all__ = ["gradient"]


def gradient(model: nn.Module, inputs: torch.Tensor, target: Target, batch_size: int = 64) -> torch.Tensor:
    """Gradient of the target class score with respect to each input; shaped like ``inputs``."""
    return input_gradients(model, inputs, as_targets(target, len(inputs), inputs.device), batch_size)
