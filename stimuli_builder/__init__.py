"""Build stimulus sets for human-subject studies of interpretability methods.

Importing this package does not import torch: ``stimuli_builder.manifest`` must stay usable
by the study server without the ML stack. The torch-based API is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "get_layer", "build_demo_sets", "build_demo_world"]

_LAZY = {
    "load_model": "stimuli_builder.models",
    "get_layer": "stimuli_builder.models",
    "build_demo_sets": "stimuli_builder.demo",
    "build_demo_world": "stimuli_builder.demo_world",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stimuli_builder' has no attribute {name!r}")
