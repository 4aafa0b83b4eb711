"""Task builders: each writes one stimulus set (manifest, images, contact sheet).

``build_task(name, ctx, world=None, **params)`` dispatches by task name; a demo world (when
given) supplies the label-permuted and trojaned models that some tasks need.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from ..manifest import Manifest
from .common import BuildContext

__all__ = ["BuildContext", "TASKS", "build_task", "world_model_kind", "world_params"]

# task name -> (module, builder function)
TASKS: dict[str, tuple[str, str]] = {
    "unit_prediction": ("unit_prediction", "build_unit_prediction"),
    "forward_simulation": ("forward_simulation", "build_forward_simulation"),
    "causal_occlusion": ("causal_occlusion", "build_causal_occlusion"),
    "explanation_faithfulness": ("faithfulness", "build_explanation_faithfulness"),
    "trojan_rediscovery": ("trojan", "build_trojan_rediscovery"),
}


def build_task(task: str, ctx: BuildContext, world: Optional[Any] = None, **params: Any) -> Manifest:
    """Build the stimulus set for ``task`` into ``ctx.out_dir`` and return its manifest."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; choose from {', '.join(TASKS)}")
    module_name, fn_name = TASKS[task]
    module = importlib.import_module(f"{__name__}.{module_name}")
    if world is not None:
        for param, value in world_params(task, world).items():
            params.setdefault(param, value)
    return getattr(module, fn_name)(ctx, **params)


def world_model_kind(task: str) -> str:
    """Which demo-world model a task explains: the trojaned one for trojan_rediscovery."""
    return "trojan" if task == "trojan_rediscovery" else "clean"


def world_params(task: str, world: Any) -> dict[str, Any]:
    """Parameters a demo world supplies: the label-permuted model, the trigger and its class."""
    if task in ("forward_simulation", "explanation_faithfulness") and world.params.permuted:
        return {"permuted_model": world.load("permuted")}
    if task == "trojan_rediscovery":
        return {"trigger": world.trigger(), "target_class": world.params.trojan_target}
    return {}
