"""Feature visualization in the spirit of lucid/lucent, batched over many units.

``render(model, units, size, steps, seed, **params)`` optimizes one image per unit in a
single batch; see :mod:`.param`, :mod:`.transform`, :mod:`.objectives`, :mod:`.render`.
"""

from .objectives import Objective, diversity, unit_objectives
from .param import fft_image, pixel_image, to_valid_rgb
from .render import DEFAULTS, FeatureVisResult, render
from .transform import Transform, center_crop, compose, jitter, pad, random_rotate, random_scale, standard_transforms

__all__ = ["render", "DEFAULTS", "FeatureVisResult", "Objective", "unit_objectives", "diversity",
           "fft_image", "pixel_image", "to_valid_rgb", "Transform", "center_crop", "compose", "jitter", "pad",
           "random_rotate", "random_scale", "standard_transforms"]
