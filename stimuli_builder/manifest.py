"""The stimulus-set manifest: the one contract in code between builder and server.

A stimulus set is a folder holding ``manifest.json`` and ``images/`` with PNG files named
by content hash. This module imports neither torch nor torchvision, so the study server can
read manifests without the ML stack.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "ImageGroup",
    "Option",
    "Item",
    "Condition",
    "Manifest",
    "ManifestError",
    "load_manifest",
    "StimulusSetWriter",
]

SCHEMA_VERSION = 1
ROLES = ("method", "baseline", "manipulated")


class ManifestError(ValueError):
    """A stimulus set that cannot be used; the message names the file, item and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageGroup(_Strict):
    """A labelled group of context images, e.g. "Strongly activating"."""

    label: str
    images: list[str] = Field(default_factory=list)


class Option(_Strict):
    """One of the two answers of a 2AFC item: an image or a text, not both."""

    image: Optional[str] = None
    text: Optional[str] = None

    @model_validator(mode="after")
    def _one_of(self) -> "Option":
        if (self.image is None) == (self.text is None):
            raise ValueError("an option needs exactly one of 'image' or 'text'")
        return self


class Item(_Strict):
    """One 2AFC question."""

    id: str = Field(min_length=1)
    condition: str = Field(min_length=1)
    family: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    context: list[ImageGroup] = Field(default_factory=list)
    options: list[Option]
    correct: Literal[0, 1]
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _two_options(cls, value: list[Option]) -> list[Option]:
        if len(value) != 2:
            raise ValueError(f"an item needs exactly 2 options, got {len(value)}")
        return value

    def image_paths(self) -> list[str]:
        """Every image path the item refers to, context first."""
        paths = [p for group in self.context for p in group.images]
        paths += [o.image for o in self.options if o.image is not None]
        return paths


class Condition(_Strict):
    """A method, baseline or manipulated version that produced what participants see."""

    name: str = Field(min_length=1)
    role: Literal["method", "baseline", "manipulated"]
    baselines: list[str] = Field(default_factory=list)
    description: str = ""
    flags: list[str] = Field(default_factory=list)


class Manifest(_Strict):
    """A whole stimulus set (see DESIGN.md for the field contract)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(min_length=1)
    task: str = Field(min_length=1)
    description: str = ""
    conditions: list[Condition]
    items: list[Item]
    practice_items: list[Item] = Field(default_factory=list)
    catch_items: list[Item] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ValueError(f"condition names repeat: {names}")
        known = set(names)
        for cond in self.conditions:
            for base in cond.baselines:
                if base not in known:
                    raise ValueError(f"condition '{cond.name}' names unknown baseline '{base}'")
        seen: set[str] = set()
        for kind, items in (("items", self.items), ("practice_items", self.practice_items),
                            ("catch_items", self.catch_items)):
            for item in items:
                if item.id in seen:
                    raise ValueError(f"{kind}: item id '{item.id}' is used twice")
                seen.add(item.id)
                if kind == "items" and item.condition not in known:
                    raise ValueError(
                        f"items: item '{item.id}' has condition '{item.condition}', "
                        f"which is not among the manifest's conditions {sorted(known)}")
        return self

    def all_items(self) -> list[tuple[str, Item]]:
        """(kind, item) for main, practice and catch items."""
        return ([("main", i) for i in self.items] + [("practice", i) for i in self.practice_items]
                + [("catch", i) for i in self.catch_items])

    def condition(self, name: str) -> Condition:
        for cond in self.conditions:
            if cond.name == name:
                return cond
        raise KeyError(name)


def _describe(exc: ValidationError, data: Any) -> str:
    """Turn pydantic's errors into lines naming the item id and the field."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if len(loc) >= 2 and loc[0] in ("items", "practice_items", "catch_items") and isinstance(loc[1], int):
            try:
                item_id = data[loc[0]][loc[1]].get("id", "?")
            except (KeyError, IndexError, TypeError, AttributeError):
                item_id = "?"
            field = ".".join(str(p) for p in loc[2:]) or "(item)"
            where = f"{loc[0]}[{loc[1]}] (id '{item_id}') field '{field}'"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_manifest(folder: str | Path, check_images: bool = True) -> Manifest:
    """Load and check ``folder/manifest.json``.

    Parameters
    ----------
    folder : path to the stimulus-set folder (or to the manifest file itself).
    check_images : also check that every referenced image exists inside the folder.

    Raises
    ------
    ManifestError naming the file, the item id and the field of every problem found.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / "manifest.json"
    root = path.parent
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest.json found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: the top level must be a JSON object")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{path}: invalid manifest:\n{_describe(exc, data)}") from None
    if check_images:
        problems = []
        root_resolved = root.resolve()
        for kind, item in manifest.all_items():
            for rel in item.image_paths():
                target = (root / rel).resolve()
                if root_resolved not in target.parents:
                    problems.append(f"  {kind} item '{item.id}': image '{rel}' lies outside the stimulus folder")
                elif not (rel.startswith("images/") and rel.lower().endswith(".png")):
                    problems.append(f"  {kind} item '{item.id}': image '{rel}' must be a PNG file under images/ "
                                    "(the study server serves only those)")
                elif not target.is_file():
                    problems.append(f"  {kind} item '{item.id}': image '{rel}' does not exist")
        if problems:
            raise ManifestError(f"{path}: unusable images:\n" + "\n".join(problems[:50])
                                + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""))
    return manifest


class StimulusSetWriter:
    """Write a stimulus set: images under content-hash names plus ``manifest.json``.

    >>> w = StimulusSetWriter("out/set")            # doctest: +SKIP
    >>> path = w.add_image(pil_image)               # 'images/3f9a0c1d2e4b5a67.png'
    >>> w.write(manifest)
    """

    def __init__(self, folder: str | Path, hash_chars: int = 16) -> None:
        self.folder = Path(folder)
        self.images = self.folder / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.hash_chars = hash_chars

    def add_png_bytes(self, data: bytes) -> str:
        """Store PNG bytes under their content hash; return the manifest-relative path."""
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ManifestError("add_png_bytes: the data is not a PNG file")
        name = hashlib.sha256(data).hexdigest()[: self.hash_chars] + ".png"
        target = self.images / name
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return f"images/{name}"

    def add_image(self, image: Any) -> str:
        """Store a PIL image (anything with ``save(fp, format=...)``) as PNG."""
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=False)
        return self.add_png_bytes(buf.getvalue())

    def write(self, manifest: Manifest | dict[str, Any]) -> Path:
        """Validate and write ``manifest.json``; images must already be stored."""
        if isinstance(manifest, dict):
            try:
                manifest = Manifest.model_validate(manifest)
            except ValidationError as exc:
                raise ManifestError(f"invalid manifest:\n{_describe(exc, manifest)}") from None
        path = self.folder / "manifest.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=1) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        load_manifest(self.folder)  # refuses a set whose images are missing
        return path
