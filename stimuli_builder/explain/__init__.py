"""Explanation methods with one call shape: ``METHOD(model, inputs, target, **params)``.

``inputs`` is an (N, C, H, W) tensor in [0, 1], ``target`` a class index or one per input;
each returns attributions shaped like ``inputs`` (Grad-CAM and the controls: (N, 1, H, W)).
"""

from __future__ import annotations

from typing import Callable

from .controls import edge, random_map
from .gradcam import gradcam, last_spatial_layer
from .gradient import gradient
from .integrated_gradients import ig_baseline, integrated_gradients
from .maps import invert, overlay, to_map
from .occlusion import occlusion
from .smoothgrad import smoothgrad

__all__ = ["gradient", "smoothgrad", "integrated_gradients", "gradcam", "occlusion", "edge", "random_map",
           "ig_baseline", "last_spatial_layer", "to_map", "invert", "overlay", "METHODS", "CONTROLS"]

METHODS: dict[str, Callable] = {
    "gradient": gradient,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "gradcam": gradcam,
    "occlusion": occlusion,
}
CONTROLS: dict[str, Callable] = {"edge": edge, "random_map": random_map}
