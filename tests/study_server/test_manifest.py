"""The stimulus-set manifest: loader errors name item and field; writer hashes content."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from stimuli_builder.manifest import ManifestError, StimulusSetWriter, load_manifest


def _copy(tiny_set: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "set"
    shutil.copytree(tiny_set, dst)
    return dst


def test_tiny_set_loads(tiny_set: Path) -> None:
    m = load_manifest(tiny_set)
    assert {c.name for c in m.conditions} == {"reference", "none"}
    assert len(m.items) == 24 and len(m.practice_items) == 4 and len(m.catch_items) == 4
    assert all(p.startswith("images/") for _, it in m.all_items() for p in it.image_paths())


def test_manifest_module_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, stimuli_builder.manifest, stimuli_builder.tiny; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_bad_field_names_item_and_field(tiny_set: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_set, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["items"][3]["correct"] = 2
    del data["items"][5]["prompt"]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError) as exc:
        load_manifest(folder)
    msg = str(exc.value)
    assert f"id '{data['items'][3]['id']}'" in msg and "field 'correct'" in msg
    assert f"id '{data['items'][5]['id']}'" in msg and "field 'prompt'" in msg


def test_missing_image_is_named(tiny_set: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_set, tmp_path)
    m = load_manifest(folder)
    victim = m.items[0].options[0].image
    (folder / victim).unlink()
    with pytest.raises(ManifestError, match=f"item '{m.items[0].id}': image '{victim}' does not exist"):
        load_manifest(folder)


def test_path_outside_folder_refused(tiny_set: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_set, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    data["items"][0]["options"][0]["image"] = "../../etc/passwd"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="outside the stimulus folder"):
        load_manifest(folder)


def test_invalid_json_and_unknown_condition(tiny_set: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_set, tmp_path)
    (folder / "manifest.json").write_text('{"name": "x",\n "items": [}')
    with pytest.raises(ManifestError, match="line 2"):
        load_manifest(folder)
    folder2 = _copy(tiny_set, tmp_path / "b")
    data = json.loads((folder2 / "manifest.json").read_text())
    data["items"][0]["condition"] = "gradcam"
    (folder2 / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="condition 'gradcam'"):
        load_manifest(folder2)


def test_writer_names_by_content_hash(tmp_path: Path) -> None:
    w = StimulusSetWriter(tmp_path / "s")
    a = w.add_image(Image.new("RGB", (4, 4), (255, 0, 0)))
    b = w.add_image(Image.new("RGB", (4, 4), (255, 0, 0)))
    c = w.add_image(Image.new("RGB", (4, 4), (0, 0, 255)))
    assert a == b != c
    assert len(list((tmp_path / "s" / "images").iterdir())) == 2
    with pytest.raises(ManifestError, match="not a PNG"):
        w.add_png_bytes(b"GIF89a")


def test_images_must_be_pngs_under_images(tiny_set: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_set, tmp_path)
    data = json.loads((folder / "manifest.json").read_text())
    (folder / "img").mkdir()
    (folder / "img" / "a.jpg").write_bytes(b"jpeg")
    data["items"][0]["options"][0]["image"] = "img/a.jpg"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=f"item '{data['items'][0]['id']}': image 'img/a.jpg' must be a PNG"):
        load_manifest(folder)
