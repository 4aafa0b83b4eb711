"""The demo stimulus sets: the demo world plus one set per task, built in one call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .datasets import load_image_folder
from .demo_world import DEMO_MODEL_SPEC, DemoWorld, DemoWorldParams, build_demo_world
from .tasks import BuildContext

__all__ = ["build_demo_sets", "demo_world_params", "DEMO_TASKS", "ALL_TASKS", "SMALL_SETTINGS", "FULL_SETTINGS"]

DEMO_TASKS = ("unit_prediction", "forward_simulation")
ALL_TASKS = ("unit_prediction", "forward_simulation", "causal_occlusion", "explanation_faithfulness",
             "trojan_rediscovery")

# Everything a demo set depends on; the small settings keep tests fast.
FULL_SETTINGS: dict[str, Any] = {
    "world": {},
    "unit_prediction": {"layers": ["block3", "block4"], "n_units": 5, "n_refs": 9, "n_fv": 5, "n_pairs": 2,
                        "fv_steps": 256},
    "forward_simulation": {"n_inputs": 24, "ig_steps": 32, "smoothgrad_samples": 16},
    "causal_occlusion": {"layers": ["block3", "block4"], "n_units": 4, "n_refs": 9, "n_fv": 5, "n_images": 2,
                         "fv_steps": 256},
    "explanation_faithfulness": {"n_inputs": 12, "ig_steps": 32, "smoothgrad_samples": 16},
    "trojan_rediscovery": {"n_distractors": 6, "n_refs": 6, "n_fv": 6, "fv_steps": 256},
}
SMALL_SETTINGS: dict[str, Any] = {
    "world": {"n_train": 3000, "n_test": 600, "epochs": 3, "n_folder_images": 360},
    "unit_prediction": {"layers": ["block4"], "n_units": 2, "n_refs": 4, "n_fv": 1, "n_pairs": 1,
                        "fv_steps": 24, "n_practice": 1, "n_catch": 2},
    "forward_simulation": {"n_inputs": 4, "ig_steps": 8, "smoothgrad_samples": 4, "n_practice": 1,
                           "n_catch": 2},
    "causal_occlusion": {"layers": ["block4"], "n_units": 2, "n_refs": 4, "n_fv": 1, "n_images": 1,
                         "fv_steps": 24, "n_practice": 1, "n_catch": 2},
    "explanation_faithfulness": {"n_inputs": 3, "ig_steps": 8, "smoothgrad_samples": 4, "n_practice": 1,
                                 "n_catch": 2, "sanity_inputs": 3},
    "trojan_rediscovery": {"n_distractors": 2, "n_refs": 3, "n_fv": 2, "fv_steps": 24, "n_practice": 1,
                           "n_catch": 2},
}


def demo_world_params(small: bool = False, seed: int = 0) -> DemoWorldParams:
    """The demo world's parameters (``small``: fewer images and epochs, for tests)."""
    settings = SMALL_SETTINGS if small else FULL_SETTINGS
    return DemoWorldParams(seed=seed, **settings["world"])


def _context(world: DemoWorld, out: Path, seed: int, progress: bool, kind: str = "clean") -> BuildContext:
    images = load_image_folder(world.image_dir, 64)
    return BuildContext(model=world.load(kind), images=images, out_dir=out, seed=seed, model_spec=DEMO_MODEL_SPEC,
                        weights=world.weights(kind), image_dir=world.image_dir, class_names=world.class_names,
                        progress=progress, extra={"demo_world": {"root": str(world.root), "metrics": world.metrics}})


def build_demo_sets(out_dir: str | Path, small: bool = False, seed: int = 0, cache_dir: str | Path | None = None,
                    tasks: Sequence[str] = DEMO_TASKS, progress: bool = False,
                    log: Optional[Callable[[str], None]] = None,
                    overrides: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, Path]:
    """Build (or load) the demo world and write one stimulus set per task under ``out_dir``.

    Returns ``{task: folder}``; each folder holds ``manifest.json``, ``images/`` and
    ``contact_sheet.png``. ``small=True`` uses a smaller world and few units/steps (tests).
    The world is cached under ``cache_dir`` (default ``$INTERP_STUDY_CACHE`` or
    ``~/.cache/interp-study``). ``overrides`` replaces task settings, e.g.
    ``{"unit_prediction": {"n_units": 4, "n_pairs": 3}}`` for more items per condition.
    """
    from .tasks import build_task, world_model_kind

    say = log or (lambda msg: None)
    settings = SMALL_SETTINGS if small else FULL_SETTINGS
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    try:
        world = build_demo_world(demo_world_params(small, seed), cache_dir=cache_dir)
        say(f"demo world: {world.root} ({world.metrics.get('clean_accuracy', 0):.1%} held-out accuracy)")
        out = Path(out_dir)
        folders: dict[str, Path] = {}
        for task in tasks:
            folder = out / task
            ctx = _context(world, folder, seed, progress, world_model_kind(task))
            task_settings = {**settings.get(task, {}), **((overrides or {}).get(task, {}))}
            build_task(task, ctx, world=world, name=f"demo-{task.replace('_', '-')}", **task_settings)
            folders[task] = folder
            say(f"{task}: {folder}")
        return folders
    finally:
        torch.set_num_threads(threads)
