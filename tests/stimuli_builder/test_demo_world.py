"""The demo world: procedural images, trained models, the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stimuli_builder.datasets import CLASS_NAMES, load_image_folder, make_demo_images
from stimuli_builder.demo import demo_world_params
from stimuli_builder.demo_world import DemoWorldParams, build_demo_world


def test_images_are_seeded_and_nameable() -> None:
    a, la = make_demo_images(24, seed=4)
    b, lb = make_demo_images(24, seed=4)
    c, _ = make_demo_images(24, seed=5)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert a.shape == (24, 3, 64, 64) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert len(CLASS_NAMES) >= 10 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert set(la.tolist()) == set(range(12))  # balanced labels cover every class


def test_small_world_is_cached_and_learns(demo_world, cache_dir) -> None:
    again = build_demo_world(demo_world_params(small=True), cache_dir=cache_dir)
    assert again.root == demo_world.root
    info = json.loads((demo_world.root / "world.json").read_text())
    assert info["params"]["n_train"] == demo_world.params.n_train
    m = demo_world.metrics
    assert m["clean_accuracy"] > 3 / len(CLASS_NAMES)  # small world: well above chance (1/12)
    assert m["trojan_attack_success"] > 0.9
    assert m["permuted_test_accuracy"] < m["clean_accuracy"]
    folder = load_image_folder(demo_world.image_dir, 64)
    assert folder.class_names == CLASS_NAMES and len(folder.images) == demo_world.params.n_folder_images
    assert DemoWorldParams(seed=1).key() != DemoWorldParams(seed=0).key()


@pytest.mark.slow
def test_full_world_meets_its_targets(tmp_path) -> None:
    """The default world: >= 90% held-out accuracy; trojan >= 95% success within 2 points."""
    world = build_demo_world(DemoWorldParams(), cache_dir=tmp_path)
    m = world.metrics
    assert m["clean_accuracy"] >= 0.90
    assert m["trojan_attack_success"] >= 0.95
    assert m["clean_accuracy"] - m["trojan_clean_accuracy"] <= 0.02
    x, y = world.test_set()
    with torch.no_grad():
        acc = (world.load("clean", device="cpu")(x[:600]).argmax(1) == y[:600]).float().mean()
    assert acc >= 0.90
