"""The streaming exemplar pass against a brute-force computation over all images at once."""

from __future__ import annotations

import pytest
import torch

from stimuli_builder.exemplars import mine, spatial_mean
from stimuli_builder.models import ModelError, record_layers

LAYERS = ["block2", "block3", "block4"]


def _brute_force(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with record_layers(model, LAYERS, transform=spatial_mean) as acts, torch.no_grad():
        model(images)
    return dict(acts)


def test_streaming_equals_brute_force_sort(demo_model, demo_images) -> None:
    images = demo_images.images[:203]
    k = 6
    result = mine(demo_model, images, LAYERS, k=k, batch_size=17)  # batches that do not divide N
    full = _brute_force(demo_model, images)
    for layer in LAYERS:
        a = full[layer]  # (N, C)
        ex = result[layer]
        assert ex.n_images == 203 and ex.channels == a.shape[1]
        top_v, top_i = torch.sort(a, dim=0, descending=True)
        bot_v, bot_i = torch.sort(a, dim=0)
        assert torch.allclose(ex.top_value, top_v[:k].t(), atol=1e-5)
        assert torch.allclose(ex.bottom_value, bot_v[:k].t(), atol=1e-5)
        # indices must point at images with exactly those activations (ties may reorder)
        assert torch.allclose(a.gather(0, ex.top_index.t()).t(), ex.top_value, atol=1e-5)
        assert torch.allclose(a.gather(0, ex.bottom_index.t()).t(), ex.bottom_value, atol=1e-5)
        # every image fits in the reservoir, so quantiles are exact
        qs = torch.tensor([0.1, 0.5, 0.9])
        assert torch.allclose(ex.quantile([0.1, 0.5, 0.9]), torch.quantile(a, qs, dim=0), atol=1e-5)


def test_reservoir_is_a_sample_of_true_activations(demo_model, demo_images) -> None:
    images = demo_images.images[:150]
    result = mine(demo_model, images, ["block4"], k=3, batch_size=32, reservoir=40, seed=3)
    ex = result["block4"]
    full = _brute_force(demo_model, images)["block4"]
    assert ex.sample_index.shape == (40,) and len(set(ex.sample_index.tolist())) == 40
    assert torch.allclose(ex.sample_value, full[ex.sample_index], atol=1e-5)
    again = mine(demo_model, images, ["block4"], k=3, batch_size=32, reservoir=40, seed=3)["block4"]
    assert torch.equal(again.sample_index, ex.sample_index)  # seeded
    idx = ex.near_quantile(5, 0.9, n=3, exclude=ex.top_index[5].tolist())
    assert len(idx) == 3 and not set(idx) & set(ex.top_index[5].tolist())


def test_iterable_of_labelled_batches(demo_model, demo_images) -> None:
    images = demo_images.images[:40]
    batches = [(images[i:i + 10], torch.zeros(10)) for i in range(0, 40, 10)]
    a = mine(demo_model, batches, ["block4"], k=4)["block4"]
    b = mine(demo_model, images, ["block4"], k=4, batch_size=40)["block4"]
    assert torch.allclose(a.top_value, b.top_value, atol=1e-5)
    assert torch.allclose(a.bottom_value, b.bottom_value, atol=1e-5)
    assert torch.equal(a.sample_index, b.sample_index)


def test_unknown_layer(demo_model, demo_images) -> None:
    with pytest.raises(ModelError, match="unknown layer 'nope'.*block4"):
        mine(demo_model, demo_images.images[:4], ["nope"])
