"""Images: the procedural demo dataset and ImageFolder-style directories.

The demo dataset draws 64x64 RGB images of a shape (circle, square, triangle) in a colour
(red, blue) with a texture (solid, striped) on a 1/f-noise background; the 12 classes are
the 12 combinations, so every class has a name a person can read ("red striped circle").
Everything is drawn from a ``numpy.random.Generator``: the same seed gives the same images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "SHAPES",
    "COLOURS",
    "TEXTURES",
    "CLASS_NAMES",
    "ImageFolderError",
    "ImageSet",
    "pink_noise",
    "draw_shapes",
    "make_demo_images",
    "stamp_trigger",
    "trigger_patch",
    "write_image_folder",
    "load_image_folder",
    "to_pil",
]

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (0.85, 0.12, 0.10), "blue": (0.12, 0.25, 0.90)}
TEXTURES = ("solid", "striped")
CLASS_NAMES = [f"{c} {t} {s}" for s in SHAPES for c in COLOURS for t in TEXTURES]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageFolderError(ValueError):
    """An image directory that cannot be used; the message names the folder or file."""


def pink_noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) 1/f noise backgrounds in [0, 1], muted colours."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    amp = 1.0 / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1.0 / size)
    spec = (rng.standard_normal((n, 3, size, size // 2 + 1))
            + 1j * rng.standard_normal((n, 3, size, size // 2 + 1))) * amp
    img = np.fft.irfft2(spec, s=(size, size))
    img = img - img.mean(axis=(1, 2, 3), keepdims=True)
    img = img / (img.std(axis=(1, 2, 3), keepdims=True) + 1e-8)
    grey = img.mean(axis=1, keepdims=True)
    img = 0.75 * grey + 0.25 * img  # mostly luminance, a little colour
    base = rng.uniform(0.35, 0.65, size=(n, 1, 1, 1))
    img = base + 0.13 * img
    return np.clip(img.transpose(0, 2, 3, 1), 0.0, 1.0)


def draw_shapes(rng: np.random.Generator, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks and colour layers for the given class labels: (mask (n,s,s), rgb (n,s,s,3))."""
    n = len(labels)
    shape_idx = labels // (len(COLOURS) * len(TEXTURES))
    colour_idx = (labels // len(TEXTURES)) % len(COLOURS)
    texture_idx = labels % len(TEXTURES)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = rng.uniform(0.17, 0.27, n) * size
    cx = rng.uniform(radius + 2, size - radius - 2)
    cy = rng.uniform(radius + 2, size - radius - 2)
    theta = rng.uniform(0, 2 * np.pi, n)
    dx = xx[None] - cx[:, None, None]
    dy = yy[None] - cy[:, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    r = radius[:, None, None]
    circle = dx ** 2 + dy ** 2 <= r ** 2
    square = (np.abs(u) <= 0.82 * r) & (np.abs(v) <= 0.82 * r)
    tri = np.ones_like(circle)
    for k in range(3):  # inside three half-planes of an equilateral triangle
        a = 2 * np.pi * k / 3
        tri &= (np.cos(a) * u + np.sin(a) * v) <= 0.5 * r * 1.15
    masks = np.where(shape_idx[:, None, None] == 0, circle, np.where(shape_idx[:, None, None] == 1, square, tri))
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    colour = palette[colour_idx] * rng.uniform(0.8, 1.1, (n, 1)) + rng.normal(0, 0.04, (n, 3))
    colour = np.clip(colour, 0, 1)[:, None, None, :]
    period = rng.uniform(7.0, 9.0, n)[:, None, None]
    phi = rng.uniform(0, 2 * np.pi, n)
    sa, ca = np.sin(phi)[:, None, None], np.cos(phi)[:, None, None]
    stripes = np.sin(2 * np.pi * (ca * xx[None] + sa * yy[None]) / period) > 0
    striped = (texture_idx == 1)[:, None, None]
    shade = np.where(striped & stripes, 0.18, 1.0)[..., None]
    rgb = colour * shade + (1 - shade) * 0.95 * (striped[..., None])  # light stripes
    return masks, rgb


def make_demo_images(n: int, seed: int, size: int = 64, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``n`` demo images (n, 3, size, size) float32 in [0, 1] and their labels (balanced)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for start in range(0, n, chunk):  # chunks keep the working set in cache
        lab = labels[start:start + chunk]
        background = pink_noise(rng, len(lab), size)
        masks, rgb = draw_shapes(rng, lab, size)
        out[start:start + chunk] = np.where(masks[..., None], rgb, background).transpose(0, 3, 1, 2)
    return out, labels.astype(np.int64)


def trigger_patch(size: int = 8) -> np.ndarray:
    """The planted trojan trigger: a yellow/black checkerboard, (3, size, size) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    check = ((yy // 2 + xx // 2) % 2).astype(np.float32)
    yellow = np.array([1.0, 0.9, 0.0], dtype=np.float32)[:, None, None]
    return yellow * check[None]


def stamp_trigger(images: np.ndarray, patch: np.ndarray, margin: int = 2) -> np.ndarray:
    """Copy of ``images`` (n, 3, H, W) with ``patch`` in the bottom-right corner."""
    out = images.copy()
    p = patch.shape[-1]
    h, w = images.shape[-2:]
    out[:, :, h - p - margin:h - margin, w - p - margin:w - margin] = patch
    return out


def to_pil(image: np.ndarray | torch.Tensor) -> Image.Image:
    """A (3, H, W) array or tensor in [0, 1] as an RGB PIL image."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    arr = np.clip(np.asarray(image).transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")


def write_image_folder(folder: str | Path, images: np.ndarray, labels: np.ndarray,
                       class_names: Sequence[str]) -> Path:
    """Write images as ``folder/NN_<class_name>/<index>.png`` (ImageFolder layout).

    The ``NN_`` prefix keeps the folders' sorted order equal to the class index order.
    """
    root = Path(folder)
    folders = [f"{k:02d}_{name.replace(' ', '_')}" for k, name in enumerate(class_names)]
    for folder_name in folders:
        (root / folder_name).mkdir(parents=True, exist_ok=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        to_pil(img).save(root / folders[int(lab)] / f"{i:05d}.png")
    return root


def class_name(folder_name: str) -> str:
    """Display name of a class folder: a leading 'NN_' order prefix dropped, '_' as spaces."""
    return re.sub(r"^\d+[_ -]", "", folder_name).replace("_", " ")


@dataclass
class ImageSet:
    """Images of a folder, loaded and resized: tensor (N, 3, S, S) in [0, 1], labels, names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    paths: list[str]

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The images in order, ``batch_size`` at a time."""
        for start in range(0, len(self.images), batch_size):
            yield self.images[start:start + batch_size]


def load_image_folder(folder: str | Path, size: int, limit: Optional[int] = None) -> ImageSet:
    """Load an ImageFolder-style directory (``class/xxx.png``; a flat folder is one class).

    Labels follow the sorted folder names (as torchvision's ImageFolder); display names drop
    a leading ``NN_`` ordering prefix.

    Images are converted to RGB, resized (shorter side) and centre-cropped to ``size``.
    Raises :class:`ImageFolderError` for a missing, empty or unreadable folder or file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageFolderError(f"image folder '{root}' does not exist or is not a directory")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(class_name(d.name), d) for d in subdirs] if subdirs else [(root.name, root)]
    files: list[tuple[Path, int]] = []
    for k, (_, d) in enumerate(groups):
        files += [(p, k) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ImageFolderError(f"image folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if limit is not None:
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    tensors, labels = [], []
    for path, k in files:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                scale = size / min(im.size)
                im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                               Image.BILINEAR)
                left, top = (im.width - size) // 2, (im.height - size) // 2
                im = im.crop((left, top, left + size, top + size))
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageFolderError(f"image '{path}' cannot be read: {exc}") from None
        tensors.append(torch.from_numpy(arr.transpose(2, 0, 1).copy()))
        labels.append(k)
    return ImageSet(torch.stack(tensors), torch.tensor(labels), [g[0] for g in groups],
                    [str(p.relative_to(root)) for p, _ in files])
