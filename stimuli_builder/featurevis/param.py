"""Image parameterizations: what the optimizer updates, and how pixels are made from it.

:func:`fft_image` keeps a batch of images as scaled Fourier coefficients (1/f spectrum, so
the optimizer moves low frequencies as readily as high ones) in a decorrelated colour space
(the square root of ImageNet's colour correlation, as in lucid), squashed by a sigmoid.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["COLOR_CORRELATION_SQRT", "fft_image", "pixel_image", "to_valid_rgb"]

# Square root of the colour correlation of natural images (ImageNet), columns as in lucid.
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])
_MAX_NORM = float(COLOR_CORRELATION_SQRT.norm(dim=0).max())

Param = tuple[list[torch.Tensor], Callable[[], torch.Tensor]]


def to_valid_rgb(image: torch.Tensor, decorrelate: bool = True) -> torch.Tensor:
    """Map unconstrained (N, 3, H, W) to RGB in [0, 1] (decorrelated colour, then sigmoid)."""
    if decorrelate:
        matrix = (COLOR_CORRELATION_SQRT / _MAX_NORM).to(image)
        image = torch.einsum("ij,njhw->nihw", matrix, image)
    return torch.sigmoid(image)


def fft_image(n: int, size: int, generator: torch.Generator, sd: float = 0.01, decay_power: float = 1.0,
              decorrelate: bool = True, device: torch.device | str = "cpu") -> Param:
    """Fourier parameterization of ``n`` images of ``size`` px; returns (params, make_image)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    freqs = torch.sqrt(fx ** 2 + fy ** 2)
    scale = (1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power) * size ** 0.5
    scale = scale.to(device)
    spectrum = (torch.randn((n, 3, size, size // 2 + 1, 2), generator=generator) * sd).to(device)
    spectrum.requires_grad_(True)

    def make_image() -> torch.Tensor:
        coeffs = torch.view_as_complex(spectrum) * scale
        image = torch.fft.irfftn(coeffs, s=(size, size), norm="ortho")
        return to_valid_rgb(image / 4.0, decorrelate)

    return [spectrum], make_image


def pixel_image(n: int, size: int, generator: torch.Generator, sd: float = 0.01,
                decorrelate: bool = True, device: torch.device | str = "cpu") -> Param:
    """Plain pixel parameterization (a baseline for the FFT one); returns (params, make_image)."""
    pixels = (torch.randn((n, 3, size, size), generator=generator) * sd).to(device).requires_grad_(True)
    return [pixels], lambda: to_valid_rgb(pixels, decorrelate)
