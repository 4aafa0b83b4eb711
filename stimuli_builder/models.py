"""Load models from a spec string and find their layers and units.

Every model returned by :func:`load_model` takes RGB images in ``[0, 1]`` shaped
(N, 3, H, W); torchvision models get their ImageNet normalisation as a forward pre-hook so
that module names stay those of the architecture (``layer3.1``).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import nn

__all__ = [
    "ModelError",
    "Unit",
    "default_device",
    "load_model",
    "get_layer",
    "check_units",
    "layer_names",
    "record_layers",
    "file_sha256",
    "model_device",
    "InputNormalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Unit = tuple[str, int]


class ModelError(ValueError):
    """A model, weights file, layer or unit that cannot be used; the message says why."""


def default_device() -> torch.device:
    """CUDA when available, otherwise the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InputNormalize(nn.Module):
    """Forward pre-hook that maps [0, 1] images to the model's normalised input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def __call__(self, module: nn.Module, args: tuple) -> tuple:  # type: ignore[override]
        return (self.forward(args[0]),) + tuple(args[1:])


def _read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise ModelError(f"weights file '{weights}' does not exist")
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise ModelError(f"weights file '{weights}' could not be read as a torch state dict: {exc}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights file '{weights}' does not hold a state dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_weights(model: nn.Module, weights: Path, spec: str) -> None:
    state = _read_state_dict(weights)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} with the wrong shape (file vs model: {'; '.join(wrong[:3])})")
        raise ModelError(f"weights file '{weights}' does not fit {spec}: " + ", ".join(parts))
    model.load_state_dict(state)


def _torchvision(name: str, weights: Optional[Path], num_classes: Optional[int]) -> nn.Module:
    from torchvision import models as tvm

    available = sorted(tvm.list_models(module=tvm))
    if name not in available:
        raise ModelError(f"unknown torchvision classification model '{name}'; available: "
                         f"{', '.join(available)}")
    kwargs: dict[str, Any] = {"weights": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    elif weights is not None:
        state = _read_state_dict(weights)
        last = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
        if last:  # infer the class count from the final linear layer
            kwargs["num_classes"] = int(last[-1].shape[0])
    model = tvm.get_model(name, **kwargs)
    if weights is not None:
        _load_weights(model, weights, f"torchvision:{name}")
    model.register_forward_pre_hook(InputNormalize(IMAGENET_MEAN, IMAGENET_STD))
    return model


def _factory(spec: str, weights: Optional[Path]) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"model spec '{spec}': cannot import module '{module_name}' ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ModelError(f"model spec '{spec}': module '{module_name}' has no callable '{attr}'")
    model = fn()
    if not isinstance(model, nn.Module):
        raise ModelError(f"model spec '{spec}': '{attr}()' returned {type(model).__name__}, not a torch module")
    if weights is not None:
        _load_weights(model, weights, spec)
    return model


def load_model(spec: str, weights: str | Path | None = None, device: str | torch.device | None = None,
               num_classes: Optional[int] = None) -> nn.Module:
    """Load ``torchvision:NAME``, ``torchscript:PATH`` or ``module:function`` in eval mode.

    ``weights`` is a local state-dict file (never downloaded). ``device`` defaults to CUDA
    when available, else CPU. Raises :class:`ModelError` with a message naming the problem.
    """
    weights_path = Path(weights) if weights is not None else None
    if weights_path is not None and not weights_path.is_file():
        raise ModelError(f"weights file '{weights_path}' does not exist")
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelError(f"model spec '{spec}' must be 'torchvision:NAME', 'torchscript:PATH' or 'module:function'")
    if kind == "torchvision":
        model = _torchvision(rest, weights_path, num_classes)
    elif kind == "torchscript":
        path = Path(rest)
        if not path.is_file():
            raise ModelError(f"TorchScript file '{path}' does not exist")
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelError(f"'{path}' is not a TorchScript file: {exc}") from None
        if weights_path is not None:
            raise ModelError("a TorchScript file carries its own weights; drop --weights")
    else:
        model = _factory(spec, weights_path)
    model.eval()
    return model.to(torch.device(device) if device is not None else default_device())


def layer_names(model: nn.Module) -> list[str]:
    """Names of the model's submodules, in definition order."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (e.g. ``layer3.1``); the error lists the names."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = layer_names(model)
    shown = ", ".join(names[:60]) + (f", ... ({len(names)} in all)" if len(names) > 60 else "")
    raise ModelError(f"unknown layer '{name}'; the model's layers are: {shown}")


def _probe_channels(model: nn.Module, layers: Sequence[str], size: int) -> dict[str, int]:
    device = model_device(model)
    with record_layers(model, layers) as acts, torch.no_grad():
        model(torch.full((1, 3, size, size), 0.5, device=device))
    return {name: int(acts[name].shape[1]) for name in layers}


def check_units(model: nn.Module, units: Sequence[Unit], size: int) -> dict[str, int]:
    """Check every (layer, channel) exists; return the channel count of each layer used."""
    layers = sorted({layer for layer, _ in units})
    for layer in layers:
        get_layer(model, layer)
    counts = _probe_channels(model, layers, size)
    for layer, channel in units:
        if not 0 <= channel < counts[layer]:
            raise ModelError(f"channel {channel} is out of range for layer '{layer}', "
                             f"which has {counts[layer]} channels (0..{counts[layer] - 1})")
    return counts


class record_layers:
    """Context manager recording the outputs of named layers on each forward pass.

    ``with record_layers(model, ["layer3"]) as acts: model(x)`` leaves ``acts["layer3"]``.
    With ``detach=False`` the recorded tensors keep their graph (for gradients).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], detach: bool = True,
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        if isinstance(model, torch.jit.ScriptModule):
            raise ModelError("layer activations cannot be recorded from a TorchScript model; "
                             "load it as 'module:function' or 'torchvision:NAME' to use layers")
        self.model, self.layers, self.detach, self.transform = model, list(layers), detach, transform
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if self.detach:
                out = out.detach()
            self.outputs[name] = self.transform(out) if self.transform is not None else out
        return hook

    def __enter__(self) -> dict[str, torch.Tensor]:
        for name in self.layers:
            self._handles.append(get_layer(self.model, name).register_forward_hook(self._hook(name)))
        return self.outputs

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def iter_param_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) for modules owning parameters directly, in definition order."""
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            yield name, module
