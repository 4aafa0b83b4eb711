"""Small random transforms for transformation robustness, each drawn per image.

Every factory returns a :class:`Transform`: a callable ``(images, generator) -> images``
carrying a description. Geometric transforms (jitter, scale, rotation) are affine maps drawn
per image; :func:`compose` multiplies consecutive ones into a single batched
``grid_sample``, so each image gets its own random draw for the cost of one resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Transform", "pad", "center_crop", "jitter", "random_scale", "random_rotate", "compose", "standard_transforms"]

MatrixFn = Callable[[int, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Transform:
    """A random image transform with a description; ``matrix`` is set for affine ones."""

    fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    description: str
    matrix: Optional[MatrixFn] = None  # (n, generator) -> (n, 3, 3) in grid_sample coordinates

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.fn(images, generator)


def _resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    theta = theta[:, :2, :].to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _affine(matrix: MatrixFn, description: str) -> Transform:
    return Transform(lambda x, g: _resample(x, matrix(len(x), g)), description, matrix)


def _eye(n: int) -> torch.Tensor:
    return torch.eye(3).repeat(n, 1, 1)


def pad(width: int, value: float = 0.5) -> Transform:
    """Pad every side by ``width`` pixels of a constant grey."""
    return Transform(lambda x, g: F.pad(x, (width,) * 4, value=value), f"pad({width}, {value})")


def center_crop(size: int) -> Transform:
    """Keep the central ``size`` x ``size`` pixels."""
    def fn(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        return x[..., top:top + size, left:left + size].contiguous()
    return Transform(fn, f"center_crop({size})")


def jitter(pixels: int, size: int) -> Transform:
    """Shift each image by its own random whole-pixel offset in [-pixels, pixels] (of ``size`` px)."""
    def matrix(n: int, g: torch.Generator) -> torch.Tensor:
        m = _eye(n)
        m[:, :2, 2] = torch.randint(-pixels, pixels + 1, (n, 2), generator=g).float() * 2 / size
        return m
    return _affine(matrix, f"jitter({pixels})")


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom each image by a factor drawn uniformly from ``scales``."""
    table = torch.tensor(list(scales), dtype=torch.float32)

    def matrix(n: int, g: torch.Generator) -> torch.Tensor:
        m = _eye(n)
        s = table[torch.randint(len(table), (n,), generator=g)]
        m[:, 0, 0] = m[:, 1, 1] = 1.0 / s
        return m
    return _affine(matrix, f"random_scale({[round(float(s), 3) for s in scales]})")


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotate each image by an angle (degrees) drawn uniformly from ``degrees``."""
    table = torch.tensor(list(degrees), dtype=torch.float32) * math.pi / 180

    def matrix(n: int, g: torch.Generator) -> torch.Tensor:
        a = table[torch.randint(len(table), (n,), generator=g)]
        m = _eye(n)
        m[:, 0, 0], m[:, 0, 1] = torch.cos(a), -torch.sin(a)
        m[:, 1, 0], m[:, 1, 1] = torch.sin(a), torch.cos(a)
        return m
    return _affine(matrix, f"random_rotate({list(degrees)})")


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order, fusing runs of affine ones into one resampling."""
    stages: list = []
    for t in transforms:
        if t.matrix is not None and stages and isinstance(stages[-1], list):
            stages[-1].append(t.matrix)
        elif t.matrix is not None:
            stages.append([t.matrix])
        else:
            stages.append(t)

    def fn(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for stage in stages:
            if isinstance(stage, list):
                theta = _eye(len(x))
                for matrix in stage:  # sampling x(A1 A2 p) equals applying A1 then A2
                    theta = theta @ matrix(len(x), g)
                x = _resample(x, theta)
            else:
                x = stage(x, g)
        return x
    return Transform(fn, "compose([" + ", ".join(t.description for t in transforms) + "])")


def standard_transforms(size: int) -> list[Transform]:
    """lucid's standard robustness transforms, pixel sizes scaled from 224 px to ``size``.

    After padding, jitter, scaling, rotation and jitter, the centre is cropped back to
    ``size`` so that the model runs at the image size (lucid leaves the padded size).
    """
    px = lambda n: max(1, round(n * size / 224))  # noqa: E731
    padded = size + 2 * px(12)
    return [pad(px(12)), jitter(px(8), padded), random_scale([1 + (i - 5) / 50 for i in range(11)]),
            random_rotate(list(range(-10, 11)) + 5 * [0]), jitter(px(4), padded), center_crop(size)]
