"""Explanation methods checked against their defining properties and hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stimuli_builder import explain
from stimuli_builder.explain._utils import class_scores


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which", ["demo", "resnet18"])
def test_integrated_gradients_completeness(which: str, request: pytest.FixtureRequest) -> None:
    """Attributions sum to f(x) - f(baseline) within 1% (Sundararajan et al. 2017, completeness)."""
    if which == "demo":
        # 64 steps leave up to ~2% on some demo images; 256 keep every one well inside 1%
        model, images = request.getfixturevalue("demo_model"), request.getfixturevalue("demo_images").images[:4]
        steps = 256
    else:
        # an untrained ResNet is far from linear along the path: quadrature needs more steps
        model, images = request.getfixturevalue("resnet"), _images(2, 64, 1)
        steps = 256
    with torch.no_grad():
        target = model(images).argmax(1)
    attr, delta = explain.integrated_gradients(model, images, target, steps=steps, return_delta=True)
    with torch.no_grad():
        gap = class_scores(model, images, target) - class_scores(model, torch.zeros_like(images), target)
    assert attr.shape == images.shape
    assert torch.allclose(delta, attr.flatten(1).sum(1) - gap, atol=1e-5)
    rel = (delta.abs() / gap.abs()).max().item()
    assert gap.abs().min() > 1e-3, "degenerate test: f(x) equals f(baseline)"
    assert rel < 0.01, f"completeness error {rel:.4f} exceeds 1%"


def _tiny_net() -> nn.Module:
    conv = nn.Conv2d(2, 3, kernel_size=1, bias=False)
    head = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]).view(3, 2, 1, 1))
        head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 0.0, 0.0]]))
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def test_gradcam_matches_hand_computation() -> None:
    """A 1x1 conv (A0 = x0, A1 = x1, A2 = x0 - x1), global average pool, linear head.

    For class 0 with head weights (1, -2, 0.5) on a 2x2 map, alpha = (1, -2, 0.5) / 4, so the
    map is 0.25*A0 - 0.5*A1 + 0.125*A2 = [[0.375, 0.125], [0.5, 1.5]] (worked by hand). For
    class 1, alpha = (-0.25, 0, 0): the map is -0.25*A0, which ReLU sets to zero.
    """
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
    model = _tiny_net()
    cam0 = explain.gradcam(model, x, 0, layer="0", upsample=False)
    assert torch.allclose(cam0, torch.tensor([[[[0.375, 0.125], [0.5, 1.5]]]]))
    cam1 = explain.gradcam(model, x, 1, layer="0", upsample=False)
    assert torch.equal(cam1, torch.zeros_like(cam1))
    raw1 = explain.gradcam(model, x, 1, layer="0", upsample=False, relu=False)
    assert torch.allclose(raw1, torch.tensor([[[[-0.25, -0.5], [-0.75, -1.0]]]]))


def test_gradcam_shape_and_default_layer(demo_model, demo_images) -> None:
    x = demo_images.images[:2]
    cam = explain.gradcam(demo_model, x, [0, 1])
    assert cam.shape == (2, 1, 64, 64)
    assert cam.min() >= 0
    assert explain.last_spatial_layer(demo_model, x) in ("block4", "block4.2")


def test_batch_consistency(resnet) -> None:
    """Explaining a batch gives the same as explaining each input alone (captum's property)."""
    x = _images(3, 48, 2)
    t = torch.tensor([3, 7, 11])
    for name, fn in (("gradient", explain.gradient), ("gradcam", lambda m, i, tt: explain.gradcam(m, i, tt, layer="layer3")),
                     ("occlusion", lambda m, i, tt: explain.occlusion(m, i, tt, window=12, stride=12))):
        together = fn(resnet, x, t)
        alone = torch.cat([fn(resnet, x[i:i + 1], t[i:i + 1]) for i in range(3)])
        assert torch.allclose(together, alone, atol=1e-5, rtol=1e-4), name


def test_smoothgrad_without_noise_is_the_gradient(demo_model, demo_images) -> None:
    x = demo_images.images[:2]
    g = explain.gradient(demo_model, x, 1)
    s = explain.smoothgrad(demo_model, x, 1, n_samples=3, noise=0.0)
    assert torch.allclose(g, s, atol=1e-6, rtol=1e-4)
    noisy = explain.smoothgrad(demo_model, x, 1, n_samples=3, noise=0.2, seed=1)
    assert not torch.allclose(g, noisy, atol=1e-4)
    assert torch.equal(noisy, explain.smoothgrad(demo_model, x, 1, n_samples=3, noise=0.2, seed=1))


def test_occlusion_on_a_linear_model() -> None:
    """For f(x) = sum(w * x) every window's drop is sum over it of w * (x - v); with a window
    of one pixel and stride one, the attribution at a pixel is sum over channels of w (x - v)."""
    w = torch.randn((3, 8, 8), generator=torch.Generator().manual_seed(0))

    class Linear(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = (x * w).flatten(1).sum(1)
            return torch.stack([s, -s], dim=1)

    x = _images(1, 8, 3)
    attr = explain.occlusion(Linear(), x, 0, window=1, stride=1, value=0.5)
    expected = (w * (x[0] - 0.5)).sum(0)
    assert torch.allclose(attr[0, 0], expected, atol=1e-5)


def test_bad_target_is_refused(demo_model, demo_images) -> None:
    with pytest.raises(ValueError, match="target"):
        explain.gradient(demo_model, demo_images.images[:2], [1, 2, 3])
    with pytest.raises(ValueError, match="out of range"):
        explain.gradient(demo_model, demo_images.images[:1], 99)


def test_maps_and_overlay(demo_model, demo_images) -> None:
    x = demo_images.images[:2]
    m = explain.to_map(explain.gradient(demo_model, x, 0))
    assert m.shape == (2, 64, 64) and m.min() >= 0 and m.max() <= 1
    assert torch.allclose(explain.invert(m), 1 - m)
    img = explain.overlay(x[0], m[0], scale=2)
    assert img.size == (128, 128) and img.mode == "RGB"
