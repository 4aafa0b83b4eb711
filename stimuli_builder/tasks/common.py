"""Shared parts of the task builders: the build context, provenance, images, contact sheets."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .. import __version__
from ..datasets import ImageSet, to_pil
from ..manifest import Item, Manifest, StimulusSetWriter
from ..models import ModelError, file_sha256, model_device

__all__ = ["BuildContext", "SetWriter", "choose_units", "write_contact_sheet"]


@dataclass
class BuildContext:
    """What every task builder needs: the model, the images, where to write, the seed."""

    model: nn.Module
    images: ImageSet
    out_dir: Path
    seed: int = 0
    model_spec: str = ""
    weights: Optional[Path] = None
    image_dir: Optional[Path] = None
    class_names: Optional[list[str]] = None
    progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return model_device(self.model)

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A numpy generator derived from the seed (``salt`` separates independent streams)."""
        return np.random.default_rng([self.seed, salt])

    def output_names(self) -> list[str]:
        """Class names for the model's outputs: given, else the image folder's, else 'class k'."""
        with torch.no_grad():
            n_out = int(self.model(self.images.images[:1].to(self.device)).shape[1])
        names = self.class_names or (self.images.class_names if len(self.images.class_names) == n_out else None)
        if names is not None and len(names) != n_out:
            raise ModelError(f"{len(names)} class names given but the model has {n_out} outputs")
        return list(names) if names else [f"class {k}" for k in range(n_out)]

    def provenance(self, task: str, **params: Any) -> dict[str, Any]:
        """Model, data, seed and software versions plus the builder's parameters."""
        model = self.model
        return {
            "builder_version": __version__,
            "task": task,
            "seed": self.seed,
            "model": {
                "spec": self.model_spec,
                "architecture": str(getattr(model, "original_name", type(model).__name__)),
                "weights_file": str(self.weights) if self.weights else None,
                "weights_sha256": file_sha256(self.weights) if self.weights else None,
                "parameters": int(sum(p.numel() for p in model.parameters())),
            },
            "dataset": {"image_dir": str(self.image_dir) if self.image_dir else None,
                        "n_images": len(self.images.images), "image_size": int(self.images.images.shape[-1]),
                        "classes": self.images.class_names},
            "device": str(self.device),
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "parameters": params,
            **self.extra,
        }


class SetWriter:
    """A :class:`StimulusSetWriter` that takes tensors and remembers the images it stored."""

    def __init__(self, folder: Path) -> None:
        self.writer = StimulusSetWriter(folder)
        self.folder = Path(folder)

    def image(self, image: torch.Tensor | Image.Image) -> str:
        """Store a (3, H, W) tensor in [0, 1] or a PIL image; return its manifest path."""
        return self.writer.add_image(image if isinstance(image, Image.Image) else to_pil(image))

    def finish(self, manifest: Manifest, sheet_items: int = 40) -> Manifest:
        """Write the manifest and a contact sheet of the first items."""
        self.writer.write(manifest)
        write_contact_sheet(self.folder, manifest, self.folder / "contact_sheet.png", sheet_items)
        return manifest


def choose_units(exemplars: dict, layers: Sequence[str], n_per_layer: int, rng: np.random.Generator,
                 exclude: Sequence[tuple[str, int]] = ()) -> list[tuple[str, int]]:
    """Random channels per layer among those whose activation varies across images."""
    chosen = []
    for layer in layers:
        ex = exemplars[layer]
        spread = (ex.top_value[:, 0] - ex.bottom_value[:, 0]).numpy()
        lo, hi = ex.quantile([0.1, 0.9]).numpy()
        live = [c for c in range(ex.channels) if spread[c] > 1e-6 and hi[c] > lo[c] and (layer, c) not in exclude]
        if not live:
            raise ModelError(f"layer '{layer}': no channel's activation varies over the images")
        take = rng.choice(live, size=min(n_per_layer, len(live)), replace=False)
        chosen += [(layer, int(c)) for c in sorted(take)]
    return chosen


def _thumb(folder: Path, rel: str, size: int) -> Image.Image:
    with Image.open(folder / rel) as im:
        return im.convert("RGB").resize((size, size), Image.NEAREST)


def write_contact_sheet(folder: Path, manifest: Manifest, path: Path, max_items: int = 40,
                        thumb: int = 48) -> Path:
    """One row per item: context thumbnails, then the two options (the correct one framed green)."""
    rows = [("main", it) for it in manifest.items[:max_items]]
    rows += [("practice", it) for it in manifest.practice_items[:4]] + [("catch", it) for it in manifest.catch_items[:4]]
    max_ctx = max([sum(min(len(g.images), 6) for g in it.context) for _, it in rows] + [0])
    label_w, gap = 220, 4
    width = label_w + (max_ctx + 3) * (thumb + gap) + 2 * 140
    height = max(1, len(rows)) * (thumb + 2 * gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (kind, item) in enumerate(rows):
        y = r * (thumb + 2 * gap) + gap
        draw.text((4, y + 4), f"[{kind}] {item.condition}", fill="black")
        draw.text((4, y + 20), item.id[:36], fill="grey")
        x = label_w
        for group in item.context:
            for rel in group.images[:6]:
                sheet.paste(_thumb(folder, rel, thumb), (x, y))
                x += thumb + gap
            x += gap * 2
        x = label_w + (max_ctx + 1) * (thumb + gap)
        for k, option in enumerate(item.options):
            box = (x - 2, y - 2, x + (thumb if option.image else 136) + 1, y + thumb + 1)
            draw.rectangle(box, outline="green" if k == item.correct else "lightgrey", width=2)
            if option.image:
                sheet.paste(_thumb(folder, option.image, thumb), (x, y))
                x += thumb + 3 * gap
            else:
                draw.text((x + 4, y + thumb // 2 - 6), (option.text or "")[:22], fill="black")
                x += 140 + gap
    sheet.save(path)
    return path


def make_item(**fields: Any) -> Item:
    """An :class:`Item` (thin wrapper so builders read as data)."""
    return Item(**fields)
