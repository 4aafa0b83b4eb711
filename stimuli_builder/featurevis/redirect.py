"""ReLU gradient redirection for the first optimization steps (as in lucid).

While active, every ``nn.ReLU`` of the model passes gradient through where its input is
negative if that gradient would raise the input, so units that start dead can be reached.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["redirected_relu"]


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        relu_grad = grad * (x > 0)
        redirected = grad * ((x > 0) | (grad < 0))  # loss gradient < 0 means "increase x"
        dead = (relu_grad == 0).flatten(1).all(1).view(-1, *([1] * (x.ndim - 1)))
        return torch.where(dead, redirected, relu_grad)


class redirected_relu:
    """Context manager switching the model's ``nn.ReLU`` modules to redirected gradients."""

    def __init__(self, model: nn.Module, active: bool = True) -> None:
        self.relus = [m for m in model.modules() if isinstance(m, nn.ReLU)] if active else []
        self.handles: list[Any] = []
        self.inplace: list[bool] = []

    def __enter__(self) -> "redirected_relu":
        for m in self.relus:
            self.inplace.append(m.inplace)
            m.inplace = False
            self.handles.append(m.register_forward_hook(lambda mod, args, out: _RedirectedReLU.apply(args[0])))
        return self

    def __exit__(self, *exc: Any) -> None:
        for m, flag, h in zip(self.relus, self.inplace, self.handles):
            m.inplace = flag
            h.remove()
