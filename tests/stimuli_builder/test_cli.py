"""The ``stimuli`` command group: defaults in --help, bad input refused without a traceback."""

from __future__ import annotations


import pytest
from click.testing import CliRunner

from stimuli_builder.cli import stimuli
from stimuli_builder.demo_world import DEMO_MODEL_SPEC


def _build(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(stimuli, ["build", *args])
    return result.exit_code, result.output, result.exception


def test_help_shows_defaults() -> None:
    out = CliRunner().invoke(stimuli, ["build", "--help"]).output
    assert "[default: 512]" in out and "[default: 0.05]" in out and "[default: 6]" in out
    assert "unit_prediction" in out
    assert "demo-world" in CliRunner().invoke(stimuli, ["--help"]).output


@pytest.fixture()
def base(demo_world, tmp_path) -> list[str]:
    return ["unit_prediction", "--model", DEMO_MODEL_SPEC, "--weights", str(demo_world.weights("clean")),
            "--images", str(demo_world.image_dir), "--out", str(tmp_path / "out"), "--steps", "2",
            "--units", "1", "--refs", "2", "--pairs", "1"]


def _no_traceback(code: int, out: str, exc: BaseException | None, needle: str) -> None:
    assert code != 0
    assert needle in out, out
    assert "Traceback" not in out
    assert exc is None or isinstance(exc, SystemExit)


def test_missing_weights_file(base, tmp_path) -> None:
    args = list(base)
    args[args.index("--weights") + 1] = str(tmp_path / "missing.pt")
    _no_traceback(*_build(*args, "--layer", "block4"), "missing.pt' does not exist")


def test_weights_that_do_not_fit(base) -> None:
    args = list(base)
    args[args.index("--model") + 1] = "torchvision:resnet18"
    _no_traceback(*_build(*args, "--layer", "layer3"), "does not fit torchvision:resnet18")


def test_unknown_layer(base) -> None:
    _no_traceback(*_build(*base, "--layer", "block9"), "unknown layer 'block9'")


def test_channel_out_of_range(base) -> None:
    _no_traceback(*_build(*base, "--unit", "block4:64"), "channel 64 is out of range")


def test_empty_and_unreadable_image_folders(base, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = list(base)
    args[args.index("--images") + 1] = str(empty)
    _no_traceback(*_build(*args, "--layer", "block4"), "holds no images")
    broken = tmp_path / "broken" / "cls"
    broken.mkdir(parents=True)
    (broken / "a.png").write_bytes(b"not really a png")
    args[args.index("--images") + 1] = str(broken.parent)
    _no_traceback(*_build(*args, "--layer", "block4"), "a.png' cannot be read")
    args[args.index("--images") + 1] = str(tmp_path / "nowhere")
    _no_traceback(*_build(*args, "--layer", "block4"), "does not exist")


def test_missing_layer_and_bad_unit(base) -> None:
    _no_traceback(*_build(*base), "--layer")
    _no_traceback(*_build(*base, "--unit", "block4"), "LAYER:CHANNEL")


def test_build_unit_prediction_from_the_cli(base, tmp_path) -> None:
    code, out, exc = _build(*base, "--unit", "block4:5", "--unit", "block3:2")
    assert code == 0, out
    from stimuli_builder.manifest import load_manifest

    manifest = load_manifest(tmp_path / "out")
    assert {i.family for i in manifest.items} == {"block4:5", "block3:2"}
    assert (tmp_path / "out" / "contact_sheet.png").is_file()


def test_demo_world_command_copies_the_world(demo_world, cache_dir, tmp_path) -> None:
    out = tmp_path / "world"
    result = CliRunner().invoke(stimuli, ["demo-world", "--small", "--cache-dir", str(cache_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "clean_accuracy" in result.output
    assert (out / "model_clean.pt").is_file() and (out / "trigger.npy").is_file()
    assert len(list((out / "images").rglob("*.png"))) == demo_world.params.n_folder_images


def test_manifest_module_does_not_import_torch() -> None:
    """The server reads manifests without the ML stack (DESIGN.md)."""
    import subprocess
    import sys

    code = "import sys, stimuli_builder.manifest, stimuli_builder; assert 'torch' not in sys.modules, 'torch'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
