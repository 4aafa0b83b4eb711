"""A tiny stimulus set drawn with Pillow (no torch), for tests and the first demo.

Task: "Which shape is bigger?" Two conditions: ``reference`` (the context shows what the
bigger shape looks like) and ``none`` (no context). Answers are known by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .manifest import Manifest, StimulusSetWriter

__all__ = ["build_tiny_set", "write_tiny_experiment"]

COLOURS = [(220, 50, 47), (38, 139, 210), (133, 153, 0), (211, 54, 130), (181, 137, 0), (42, 161, 152)]


def _shape(size: int, radius: float, colour: tuple[int, int, int], square: bool, bg: int) -> Image.Image:
    img = Image.new("RGB", (size, size), (bg, bg, bg))
    draw = ImageDraw.Draw(img)
    c, r = size / 2, radius
    box = (c - r, c - r, c + r, c + r)
    (draw.rectangle if square else draw.ellipse)(box, fill=colour)
    return img


def build_tiny_set(out: str | Path, n_per_condition: int = 12, n_practice: int = 4, n_catch: int = 4,
                   seed: int = 0, size: int = 48) -> Path:
    """Write the tiny set to ``out`` and return the folder."""
    rng = np.random.default_rng(seed)
    writer = StimulusSetWriter(out)

    def pair(k: int, hard: bool) -> tuple[str, str, float, float, tuple[int, int, int], bool]:
        colour = COLOURS[k % len(COLOURS)]
        square = bool(k % 2)
        big = float(rng.uniform(0.30, 0.42)) * size
        ratio = float(rng.uniform(0.80, 0.90)) if hard else 0.45
        bg = int(rng.integers(200, 250))
        a = writer.add_image(_shape(size, big, colour, square, bg))
        b = writer.add_image(_shape(size, big * ratio, colour, square, bg))
        return a, b, big, big * ratio, colour, square

    def item(item_id: str, condition: str, family: str, hard: bool, k: int) -> dict:
        a, b, ra, rb, colour, square = pair(k, hard)
        correct = int(rng.integers(2))
        options = [{"image": a}, {"image": b}] if correct == 0 else [{"image": b}, {"image": a}]
        context = []
        if condition == "reference":
            ref = writer.add_image(_shape(size, 0.45 * size, colour, square, 235))
            context = [{"label": "Bigger looks like this", "images": [ref]}]
        return {"id": item_id, "condition": condition, "family": family, "prompt": "Which shape is bigger?",
                "context": context, "options": options, "correct": correct,
                "meta": {"radius_big": round(ra, 2), "radius_small": round(rb, 2), "square": square}}

    items = []
    for cond in ("reference", "none"):
        for j in range(n_per_condition):
            items.append(item(f"{cond}/{j}", cond, f"shape{j % 4}", hard=True, k=j))
    practice = [item(f"practice/{j}", "none", "practice", hard=False, k=j) for j in range(n_practice)]
    catch = [item(f"catch/{j}", "none", "catch", hard=False, k=j) for j in range(n_catch)]
    manifest = Manifest.model_validate({
        "schema_version": 1, "name": "tiny-bigger-shape", "task": "size_judgement",
        "description": "Tiny Pillow-drawn set for tests: which of two shapes is bigger?",
        "conditions": [{"name": "reference", "role": "method", "baselines": ["none"]},
                       {"name": "none", "role": "baseline"}],
        "items": items, "practice_items": practice, "catch_items": catch,
        "provenance": {"builder": "stimuli_builder.tiny", "seed": seed, "size": size,
                       "n_per_condition": n_per_condition},
    })
    writer.write(manifest)
    return Path(out)


def write_tiny_experiment(folder: str | Path, stimuli: str | Path, slug: str = "tiny", trials: int = 6,
                          practice: int = 0, catch: int = 0, extra: str = "") -> Path:
    """Write an experiment YAML using the tiny set; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.yaml"
    path.write_text(
        f"slug: {slug}\n"
        f"title: Which shape is bigger?\n"
        f"stimuli: {Path(stimuli).resolve()}\n"
        f"conditions: [reference, none]\n"
        f"design: within\n"
        f"trials_per_participant: {trials}\n"
        f"practice: {{trials: {practice}, feedback: true}}\n"
        f"catch: {{trials: {catch}, min_accuracy: 0.5}}\n"
        f"seed: 7\n"
        f"recruitment: {{platform: prolific, completion_url: 'https://app.prolific.com/submissions/complete?cc=TINY123'}}\n"
        + extra, encoding="utf-8")
    return path
