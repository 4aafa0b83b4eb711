"""Turn attributions into maps a person can read, and manipulate those maps.

``to_map`` reduces attributions to one non-negative map per image scaled to [0, 1] (absolute
values summed over colour channels, clipped at the 99th percentile); ``invert`` flips a map
(Kaur et al. 2020's manipulated explanation); ``overlay`` draws a map over its image.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["to_map", "invert", "overlay"]


def to_map(attributions: torch.Tensor, signed: bool = False, clip: float = 0.99) -> torch.Tensor:
    """(N, C, H, W) attributions -> (N, H, W) maps in [0, 1] (positive part if ``signed``)."""
    a = attributions.detach().float()
    m = a.sum(1).clamp(min=0) if signed else a.abs().sum(1)
    top = torch.quantile(m.flatten(1), clip, dim=1).clamp(min=1e-12).view(-1, 1, 1)
    return (m / top).clamp(0, 1)


def invert(maps: torch.Tensor) -> torch.Tensor:
    """1 - map: highlights what the explanation called unimportant."""
    return 1.0 - maps


def _colormap(values: np.ndarray, name: str) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps[name](values)[..., :3]


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.55, cmap: str = "inferno",
            scale: int = 1) -> Image.Image:
    """A (3, H, W) image in [0, 1] in grey with a (H, W) map in [0, 1] blended on top, as PIL RGB."""
    img = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    grey = np.repeat(img.mean(2, keepdims=True), 3, axis=2)
    h = heat.detach().float().cpu().numpy()
    colour = _colormap(np.clip(h, 0, 1), cmap)
    weight = alpha * np.clip(h, 0, 1)[..., None] ** 0.5
    out = (1 - weight) * grey * 0.8 + weight * colour
    pil = Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale > 1 else pil
