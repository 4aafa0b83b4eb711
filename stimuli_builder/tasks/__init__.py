"""Task builders: each writes one stimulus set (manifest, images, contact sheet).

``build_task(name, ctx, world=None, **params)`` dispatches by task name; a demo world (when
given) supplies the label-permuted and trojaned models that some tasks need.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from ..manifest import Manifest
from .common import BuildContext

__all__ = ["BuildContext", "TASKS", "build_task"]

# task name -> (module, builder function)
TASKS: dict[str, tuple[str, str]] = {
    "unit_prediction": ("unit_prediction", "build_unit_prediction"),
    "forward_simulation": ("forward_simulation", "build_forward_simulation"),
}


def build_task(task: str, ctx: BuildContext, world: Optional[Any] = None, **params: Any) -> Manifest:
    """Build the stimulus set for ``task`` into ``ctx.out_dir`` and return its manifest."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; choose from {', '.join(TASKS)}")
    module_name, fn_name = TASKS[task]
    module = importlib.import_module(f"{__name__}.{module_name}")
    needs = getattr(module, "WORLD_MODELS", {})
    for param, kind in needs.items():
        if world is not None and param not in params:
            params[param] = world.load(kind) if kind != "trigger" else world.trigger()
    return getattr(module, fn_name)(ctx, **params)
