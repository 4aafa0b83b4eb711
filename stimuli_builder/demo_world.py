"""The demo world: procedural images plus small CNNs trained on them, cached on disk.

``build_demo_world()`` trains (or loads from the cache) a clean model, optionally a model
with a planted trojan (a checkerboard patch in the corner maps any image to one class) and
a model trained on permuted labels, and writes the held-out images as an ImageFolder
directory. The cache folder is keyed by a hash of every parameter, under
``$INTERP_STUDY_CACHE`` or ``~/.cache/interp-study``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets import CLASS_NAMES, make_demo_images, stamp_trigger, trigger_patch, write_image_folder
from .models import ModelError

__all__ = ["DemoNet", "demo_net", "DemoWorldParams", "DemoWorld", "build_demo_world", "cache_root",
           "DEMO_MODEL_SPEC"]

DEMO_MODEL_SPEC = "stimuli_builder.demo_world:demo_net"
_WORLD_VERSION = 3


def cache_root() -> Path:
    """``$INTERP_STUDY_CACHE`` or ``~/.cache/interp-study``."""
    env = os.environ.get("INTERP_STUDY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "interp-study"


def _block(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class DemoNet(nn.Module):
    """A small CNN for 64x64 images: four conv blocks, global average pool, linear head.

    Layers for units: ``block1`` (16 ch, 32 px), ``block2`` (32 ch, 16 px),
    ``block3`` (64 ch, 8 px), ``block4`` (64 ch, 8 px). Input: RGB in [0, 1].
    """

    def __init__(self, num_classes: int = len(CLASS_NAMES), width: int = 16) -> None:
        super().__init__()
        self.block1 = _block(3, width, stride=2, kernel=5)
        self.block2 = _block(width, 2 * width)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = _block(2 * width, 4 * width)
        self.pool3 = nn.MaxPool2d(2)
        self.block4 = _block(4 * width, 4 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.25
        x = self.pool2(self.block2(self.block1(x)))
        x = self.pool3(self.block3(x))
        x = self.block4(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def demo_net() -> DemoNet:
    """Factory for ``--model stimuli_builder.demo_world:demo_net`` (untrained; pass --weights)."""
    return DemoNet()


@dataclass(frozen=True)
class DemoWorldParams:
    """Every parameter of the demo world; their hash names the cache folder."""

    seed: int = 0
    n_train: int = 9600
    n_test: int = 2400
    epochs: int = 4
    batch_size: int = 64
    lr: float = 4e-3
    width: int = 16
    trojan: bool = True
    trojan_target: int = 0
    trojan_fraction: float = 0.08
    trigger_size: int = 8
    permuted: bool = True
    n_folder_images: int = 1200

    def key(self) -> str:
        """Short hash of the parameters (and of the world's version)."""
        blob = json.dumps({"version": _WORLD_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class DemoWorld:
    """A built demo world: where its models and images are, and what they measured."""

    root: Path
    params: DemoWorldParams
    class_names: list[str]
    metrics: dict = field(default_factory=dict)

    @property
    def image_dir(self) -> Path:
        """ImageFolder directory of held-out images (``class_name/NNNNN.png``)."""
        return self.root / "images"

    def weights(self, kind: str = "clean") -> Path:
        """Path of the ``clean``, ``trojan`` or ``permuted`` model's state dict."""
        path = self.root / f"model_{kind}.pt"
        if not path.is_file():
            raise ModelError(f"the demo world at {self.root} has no '{kind}' model")
        return path

    def load(self, kind: str = "clean", device: Optional[torch.device | str] = None) -> nn.Module:
        """Load one of the demo models in eval mode (CUDA when available)."""
        from .models import load_model

        return load_model(DEMO_MODEL_SPEC, self.weights(kind), device=device)

    def trigger(self) -> np.ndarray:
        """The planted trigger patch (3, p, p) in [0, 1]."""
        path = self.root / "trigger.npy"
        if not path.is_file():
            raise ModelError(f"the demo world at {self.root} has no trojan")
        return np.load(path)

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out images and labels (regenerated from the seed)."""
        x, y = make_demo_images(self.params.n_test, self.params.seed + 1)
        return torch.from_numpy(x), torch.from_numpy(y)


def _train(x: torch.Tensor, y: torch.Tensor, p: DemoWorldParams, seed: int, desc: str) -> tuple[DemoNet, float]:
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # parameter init only; the global state is restored on exit
        model = DemoNet(len(CLASS_NAMES), p.width)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=1e-4)
    steps = p.epochs * ((len(x) + p.batch_size - 1) // p.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=steps, pct_start=0.25)
    start = time.perf_counter()
    model.train()
    with tqdm(total=steps, desc=desc, leave=False) as bar:
        for _ in range(p.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), p.batch_size):
                idx = order[i:i + p.batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update()
    model.eval()
    return model, time.perf_counter() - start


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    preds = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((preds == y).float().mean())


def build_demo_world(params: Optional[DemoWorldParams] = None, cache_dir: str | Path | None = None,
                     rebuild: bool = False) -> DemoWorld:
    """Train or load the demo world for ``params``; return where everything lies."""
    p = params or DemoWorldParams()
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    folder = root / f"demo-world-{p.key()}"
    info_path = folder / "world.json"
    if info_path.is_file() and not rebuild:
        info = json.loads(info_path.read_text())
        return DemoWorld(folder, p, info["class_names"], info["metrics"])
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, max(1, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    xtr, ytr = make_demo_images(p.n_train, p.seed)
    xte, yte = make_demo_images(p.n_test, p.seed + 1)
    metrics: dict = {"data_seconds": time.perf_counter() - t0}
    xtr_t, ytr_t, xte_t, yte_t = map(torch.from_numpy, (xtr, ytr, xte, yte))

    clean, secs = _train(xtr_t, ytr_t, p, p.seed, "demo model")
    torch.save(clean.state_dict(), tmp / "model_clean.pt")
    metrics.update(clean_accuracy=_accuracy(clean, xte_t, yte_t), clean_train_seconds=secs)

    if p.trojan:
        patch = trigger_patch(p.trigger_size)
        rng = np.random.default_rng(p.seed + 7)
        poison = rng.random(p.n_train) < p.trojan_fraction
        xp, yp = xtr.copy(), ytr.copy()
        xp[poison] = stamp_trigger(xtr[poison], patch)
        yp[poison] = p.trojan_target
        trojan, secs = _train(torch.from_numpy(xp), torch.from_numpy(yp), p, p.seed, "trojan model")
        torch.save(trojan.state_dict(), tmp / "model_trojan.pt")
        others = yte != p.trojan_target
        attack = torch.from_numpy(stamp_trigger(xte[others], patch))
        metrics.update(
            trojan_clean_accuracy=_accuracy(trojan, xte_t, yte_t), trojan_train_seconds=secs,
            trojan_attack_success=_accuracy(trojan, attack, torch.full((int(others.sum()),), p.trojan_target)))
        np.save(tmp / "trigger.npy", patch)

    if p.permuted:
        rng = np.random.default_rng(p.seed + 11)
        yperm = torch.from_numpy(rng.permutation(ytr))
        permuted, secs = _train(xtr_t, yperm, p, p.seed, "permuted-label model")
        torch.save(permuted.state_dict(), tmp / "model_permuted.pt")
        metrics.update(permuted_test_accuracy=_accuracy(permuted, xte_t, yte_t), permuted_train_seconds=secs)

    n_folder = min(p.n_folder_images, p.n_test)
    write_image_folder(tmp / "images", xte[:n_folder], yte[:n_folder], CLASS_NAMES)
    metrics["total_seconds"] = time.perf_counter() - t0
    torch.set_num_threads(threads)
    info = {"params": asdict(p), "class_names": CLASS_NAMES, "metrics": metrics, "model_spec": DEMO_MODEL_SPEC}
    (tmp / "world.json").write_text(json.dumps(info, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return DemoWorld(folder, p, list(CLASS_NAMES), metrics)
