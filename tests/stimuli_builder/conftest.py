"""Fixtures for the builder tests: a small demo world trained once per run, seeded models."""

from __future__ import annotations

from pathlib import Path

import importlib.util

import pytest

from tests.conftest import require

require(importlib.util.find_spec("torch") is not None, "the builder tests need the 'stimuli' extra (torch)")
import torch  # noqa: E402

from stimuli_builder.datasets import load_image_folder  # noqa: E402
from stimuli_builder.demo import build_demo_sets, demo_world_params  # noqa: E402
from stimuli_builder.demo_world import DemoWorld, build_demo_world  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    """Tests run on a 2-core machine: keep torch from oversubscribing it."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cache_dir(demo_cache_dir: Path) -> Path:
    """The run's throwaway demo-world cache (never the user's ~/.cache), shared with tests/e2e."""
    return demo_cache_dir


@pytest.fixture(scope="session")
def demo_world(cache_dir: Path) -> DemoWorld:
    """The small demo world (clean, trojan and permuted-label models), trained once."""
    return build_demo_world(demo_world_params(small=True), cache_dir=cache_dir)


@pytest.fixture(scope="session")
def demo_model(demo_world: DemoWorld):
    """The small demo world's clean model on the CPU."""
    return demo_world.load("clean", device="cpu")


@pytest.fixture(scope="session")
def demo_images(demo_world: DemoWorld):
    """The demo world's held-out image folder, loaded."""
    return load_image_folder(demo_world.image_dir, 64)


@pytest.fixture(scope="session")
def demo_sets(demo_world: DemoWorld, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The small demo stimulus sets of every task, built by ``build_demo_sets``."""
    from stimuli_builder.demo import ALL_TASKS

    return build_demo_sets(tmp_path_factory.mktemp("demo-sets"), small=True, cache_dir=cache_dir, tasks=ALL_TASKS)


def seeded_resnet18(seed: int = 0):
    """An untrained torchvision resnet18 with seeded weights; the global RNG is left as it was."""
    from torchvision.models import resnet18

    from stimuli_builder.models import IMAGENET_MEAN, IMAGENET_STD, InputNormalize

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet18(weights=None)
    model.register_forward_pre_hook(InputNormalize(IMAGENET_MEAN, IMAGENET_STD))
    return model.eval()


@pytest.fixture(scope="session")
def resnet():
    """A seeded, untrained resnet18 (ImageNet normalisation as a pre-hook), eval mode."""
    return seeded_resnet18(0)
