"""Model loading: specs, local weights, layers and units, with actionable errors."""

from __future__ import annotations

import pytest
import torch

from stimuli_builder.models import ModelError, check_units, get_layer, load_model

from .conftest import seeded_resnet18


def test_fixture_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    seeded_resnet18(3)
    assert torch.equal(state, torch.random.get_rng_state())
    a, b = seeded_resnet18(3), seeded_resnet18(3)
    assert torch.equal(a.conv1.weight, b.conv1.weight)


def test_torchvision_with_local_weights(tmp_path, resnet) -> None:
    path = tmp_path / "r18.pt"
    torch.save(resnet.state_dict(), path)
    model = load_model("torchvision:resnet18", path, device="cpu")
    assert not model.training
    x = torch.rand((2, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), resnet(x), atol=1e-5)
    # the [0, 1] -> ImageNet normalisation is a pre-hook: layer names are the architecture's
    assert get_layer(model, "layer3.1") is model.layer3[1]


def test_device_follows_availability(tmp_path, resnet) -> None:
    path = tmp_path / "r18.pt"
    torch.save(resnet.state_dict(), path)
    model = load_model("torchvision:resnet18", path)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected


def test_missing_and_misfitting_weights(tmp_path, demo_world) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model("torchvision:resnet18", tmp_path / "nope.pt")
    with pytest.raises(ModelError, match="does not fit torchvision:resnet18.*missing"):
        load_model("torchvision:resnet18", demo_world.weights("clean"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not be read"):
        load_model("torchvision:resnet18", junk)
    with pytest.raises(ModelError, match="unknown torchvision classification model 'resnet19'"):
        load_model("torchvision:resnet19")
    with pytest.raises(ModelError, match="must be"):
        load_model("resnet18")


def test_factory_and_torchscript(tmp_path, demo_world, demo_model) -> None:
    model = load_model("stimuli_builder.demo_world:demo_net", demo_world.weights("clean"), device="cpu")
    x = torch.rand((2, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = demo_model(x)
        assert torch.allclose(model(x), expected)
    scripted = tmp_path / "demo.ts"
    torch.jit.script(demo_model).save(str(scripted))
    ts = load_model(f"torchscript:{scripted}", device="cpu")
    with torch.no_grad():
        assert torch.allclose(ts(x), expected, atol=1e-5)
    with pytest.raises(ModelError, match="cannot import module"):
        load_model("no_such_module_xyz:make")
    with pytest.raises(ModelError, match="has no callable"):
        load_model("stimuli_builder.demo_world:nothing_here")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"torchscript:{tmp_path / 'missing.ts'}")


def test_layers_and_units(demo_model) -> None:
    with pytest.raises(ModelError, match="unknown layer 'block9'.*block1, block1.0"):
        get_layer(demo_model, "block9")
    assert check_units(demo_model, [("block4", 63), ("block2", 0)], 64) == {"block2": 32, "block4": 64}
    with pytest.raises(ModelError, match="channel 64 is out of range for layer 'block4', which has 64"):
        check_units(demo_model, [("block4", 64)], 64)
