"""Feature visualization: it must drive units beyond what natural images achieve."""

from __future__ import annotations

import torch

from stimuli_builder import featurevis
from stimuli_builder.exemplars import mine
from stimuli_builder.featurevis.transform import compose, jitter, random_rotate, random_scale


def test_feature_vis_beats_best_natural_exemplar(demo_model, demo_images) -> None:
    units = [("block3", 3), ("block3", 17), ("block4", 5), ("block4", 40)]
    best = mine(demo_model, demo_images.images, ["block3", "block4"], k=1)
    result = featurevis.render(demo_model, units, size=64, steps=96, seed=0)
    assert result.images.shape == (4, 3, 64, 64)
    assert result.images.min() >= 0 and result.images.max() <= 1
    for (layer, channel), value in zip(units, result.activations):
        natural = float(best[layer].top_value[channel, 0])
        assert float(value) > natural, f"{layer}:{channel}: feature vis {float(value):.3f} <= natural {natural:.3f}"


def test_minimizing_goes_below_the_weakest_exemplar(demo_model, demo_images) -> None:
    # block4.1 is the batch norm before the ReLU, so activations can go below zero
    ex = mine(demo_model, demo_images.images, ["block4.1"], k=1)["block4.1"]
    result = featurevis.render(demo_model, [("block4.1", 5, -1)], size=64, steps=64, seed=1)
    assert float(result.activations[0]) < float(ex.bottom_value[5, 0])


def test_each_image_optimizes_its_own_unit(demo_model) -> None:
    units = [("block4", 5), ("block4", 40)]
    result = featurevis.render(demo_model, units, size=64, steps=64, seed=0, transforms="none")
    from stimuli_builder.exemplars import spatial_mean
    from stimuli_builder.models import record_layers

    with record_layers(demo_model, ["block4"], transform=spatial_mean) as acts, torch.no_grad():
        demo_model(result.images)
    a = acts["block4"]
    assert a[0, 5] > a[1, 5] and a[1, 40] > a[0, 40]


def test_seeded_and_provenance(demo_model) -> None:
    a = featurevis.render(demo_model, [("block3", 1)], size=32, steps=4, seed=7)
    b = featurevis.render(demo_model, [("block3", 1)], size=32, steps=4, seed=7)
    assert torch.equal(a.images, b.images)
    prov = a.provenance
    assert prov["lr"] == 0.05 and prov["steps"] == 4 and prov["param"] == "fft" and prov["seed"] == 7
    assert "jitter" in prov["transforms"] and featurevis.DEFAULTS["steps"] == 512


def test_fused_affine_equals_sequential_centre() -> None:
    """Composing affine transforms into one resampling matches applying them one by one
    (away from the borders, where reflection padding differs)."""
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    x = torch.stack([torch.sin(xx / 5 + k) * torch.cos(yy / 7 - k) for k in range(3)]).expand(3, 3, 40, 40)
    x = 0.5 + 0.4 * x  # smooth, so bilinear resampling once or three times agrees
    ts = [jitter(2, 40), random_scale([0.9, 1.1]), random_rotate([-10, 10])]
    fused = compose(ts)(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    seq = x
    for t in ts:
        seq = t(seq, g)
    assert torch.allclose(fused[..., 12:28, 12:28], seq[..., 12:28, 12:28], atol=0.05)
