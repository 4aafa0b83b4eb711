"""``interp-study stimuli``: build the demo world and stimulus sets from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

import click

__all__ = ["stimuli"]


def _fail_on_user_errors(fn: Any) -> Any:
    """Turn the builder's user-facing errors into a ClickException (message, exit 1, no traceback)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:  # ModelError, ImageFolderError, ManifestError derive from it
            raise click.ClickException(str(exc)) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"file not found: {exc.filename}") from None
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def stimuli() -> None:
    """Build stimulus sets (manifest.json + images/) from a model and an image folder."""


@stimuli.command("demo-world")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also copy the world's images and model weights into this folder.")
@click.option("--sets", "sets_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also build the demo stimulus sets (unit_prediction, forward_simulation) here.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder [default: $INTERP_STUDY_CACHE or ~/.cache/interp-study].")
@click.option("--seed", default=0, show_default=True, help="Seed of the images and the training.")
@click.option("--small", is_flag=True, default=False, show_default=True, help="Small, fast world (for tests).")
@click.option("--rebuild", is_flag=True, default=False, show_default=True, help="Retrain even if cached.")
@_fail_on_user_errors
def demo_world_cmd(out: Optional[Path], sets_dir: Optional[Path], cache_dir: Optional[Path], seed: int,
                   small: bool, rebuild: bool) -> None:
    """Train (or load from the cache) the procedural demo world and its models."""
    from .demo import build_demo_sets, demo_world_params
    from .demo_world import DEMO_MODEL_SPEC, build_demo_world

    world = build_demo_world(demo_world_params(small, seed), cache_dir=cache_dir, rebuild=rebuild)
    root = world.root
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(world.image_dir, out / "images", dirs_exist_ok=True)
        for path in root.glob("*.pt"):
            shutil.copy2(path, out / path.name)
        for extra in ("world.json", "trigger.npy"):
            if (root / extra).exists():
                shutil.copy2(root / extra, out / extra)
        root = out
    click.echo(f"demo world: {root}")
    click.echo(json.dumps(world.metrics, indent=1))
    click.echo("build a set, e.g.:\n  interp-study stimuli build unit_prediction "
               f"--model {DEMO_MODEL_SPEC} --weights {root / 'model_clean.pt'} "
               f"--images {root / 'images'} --layer block4 --out stimuli/unit_prediction")
    if sets_dir is not None:
        folders = build_demo_sets(sets_dir, small=small, seed=seed, cache_dir=cache_dir, progress=True)
        for task, folder in folders.items():
            click.echo(f"{task}: {folder}")


def _parse_unit(text: str) -> tuple[str, int]:
    layer, sep, channel = text.rpartition(":")
    if not sep or not layer or not channel.isdigit():
        raise click.BadParameter(f"'{text}' is not LAYER:CHANNEL (e.g. layer3.1:12)", param_hint="--unit")
    return layer, int(channel)


def _image_size(folder: Path) -> int:
    from PIL import Image

    from .datasets import IMAGE_SUFFIXES, ImageFolderError

    if not folder.is_dir():
        raise ImageFolderError(f"image folder '{folder}' does not exist or is not a directory")
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(path) as im:
                    return min(224, min(im.size))
            except OSError as exc:
                raise ImageFolderError(f"image '{path}' cannot be read: {exc}") from None
    raise ImageFolderError(f"image folder '{folder}' holds no images")


@stimuli.command("build")
@click.argument("task", type=click.Choice(["unit_prediction", "forward_simulation", "causal_occlusion",
                                           "explanation_faithfulness", "trojan_rediscovery"]))
@click.option("--model", "model_spec", required=True,
              help="torchvision:NAME, torchscript:PATH or module:function.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Local state-dict file.")
@click.option("--images", "image_dir", required=True, type=click.Path(path_type=Path),
              help="ImageFolder-style directory (class/xxx.png).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--layer", "layers", multiple=True, help="Layer by module name (repeatable), e.g. layer3.1.")
@click.option("--unit", "unit_specs", multiple=True, help="Explicit unit LAYER:CHANNEL (repeatable).")
@click.option("--units", "n_units", default=6, show_default=True, help="Random units per layer.")
@click.option("--steps", default=512, show_default=True, help="Feature-visualization steps.")
@click.option("--lr", default=0.05, show_default=True, help="Feature-visualization learning rate (Adam).")
@click.option("--refs", "n_refs", default=9, show_default=True, help="Reference images per group.")
@click.option("--pairs", "n_pairs", default=2, show_default=True, help="Query pairs per unit and condition.")
@click.option("--inputs", "n_inputs", default=24, show_default=True, help="Input images (explanation tasks).")
@click.option("--methods", default="gradient,smoothgrad,integrated_gradients,gradcam,occlusion", show_default=True,
              help="Explanation methods (comma-separated).")
@click.option("--target-layer", default=None, help="Grad-CAM layer [default: the last layer with spatial maps].")
@click.option("--permuted-weights", type=click.Path(path_type=Path), default=None,
              help="Weights of the same architecture trained on permuted labels (adds manipulated conditions).")
@click.option("--trigger", type=click.Path(path_type=Path), default=None,
              help="trojan_rediscovery: the planted trigger patch (.npy (3,h,w) in [0,1] or an image).")
@click.option("--target-class", default=None, type=int, help="trojan_rediscovery: the trojan's target class.")
@click.option("--image-size", default=None, type=int, help="Input size [default: first image's shorter side, max 224].")
@click.option("--max-images", default=None, type=int, help="Use at most this many images [default: all].")
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice.")
@click.option("--device", default=None, help="torch device [default: cuda if available, else cpu].")
@_fail_on_user_errors
def build_cmd(task: str, model_spec: str, weights: Optional[Path], image_dir: Path, out: Path, layers: tuple,
              unit_specs: tuple, n_units: int, steps: int, lr: float, n_refs: int, n_pairs: int, n_inputs: int,
              methods: str, target_layer: Optional[str], permuted_weights: Optional[Path], trigger: Optional[Path],
              target_class: Optional[int], image_size: Optional[int], max_images: Optional[int], seed: int,
              device: Optional[str]) -> None:
    """Build one stimulus set for TASK from a model and an image folder."""
    from .datasets import load_image_folder
    from .models import load_model
    from .tasks import TASKS, BuildContext, build_task

    if task not in TASKS:
        raise click.ClickException(f"task '{task}' is not available yet; available: {', '.join(sorted(TASKS))}")
    units = [_parse_unit(u) for u in unit_specs]
    model = load_model(model_spec, weights, device=device)
    size = image_size or _image_size(image_dir)
    images = load_image_folder(image_dir, size, limit=max_images)
    ctx = BuildContext(model=model, images=images, out_dir=out, seed=seed, model_spec=model_spec, weights=weights,
                       image_dir=image_dir, progress=True)
    params: dict[str, Any] = {}
    if task in ("unit_prediction", "causal_occlusion"):
        if not layers and not units:
            raise click.UsageError("give --layer (repeatable) or --unit LAYER:CHANNEL")
        params.update(layers=list(layers), units=units or None, n_units=n_units, n_refs=n_refs, fv_steps=steps,
                      lr=lr)
        if task == "unit_prediction":
            params["n_pairs"] = n_pairs
    else:
        params.update(n_inputs=n_inputs, methods=[m.strip() for m in methods.split(",") if m.strip()])
        if target_layer:
            params["target_layer"] = target_layer
        if permuted_weights is not None:
            params["permuted_model"] = load_model(model_spec, permuted_weights, device=device)
        if task == "trojan_rediscovery":
            params = {"fv_steps": steps, "lr": lr, "trigger": trigger, "target_class": target_class}
    manifest = build_task(task, ctx, **params)
    click.echo(f"{task}: {len(manifest.items)} items, {len(manifest.practice_items)} practice, "
               f"{len(manifest.catch_items)} catch -> {out / 'manifest.json'} (contact sheet: "
               f"{out / 'contact_sheet.png'})")
