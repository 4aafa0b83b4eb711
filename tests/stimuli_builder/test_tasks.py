"""Every task's stimulus set loads with the manifest loader and means what it says."""

from __future__ import annotations

import torch

from stimuli_builder.exemplars import spatial_mean
from stimuli_builder.manifest import load_manifest
from stimuli_builder.models import record_layers


def test_demo_unit_prediction(demo_sets, demo_model, demo_images) -> None:
    folder = demo_sets["unit_prediction"]
    m = load_manifest(folder)
    assert m.task == "unit_prediction"
    roles = {c.name: (c.role, c.baselines) for c in m.conditions}
    assert roles == {"feature_vis": ("method", ["natural", "none"]), "natural": ("baseline", []),
                     "none": ("baseline", [])}
    assert {i.condition for i in m.items} == {"feature_vis", "natural", "none"}
    assert m.practice_items and m.catch_items
    assert (folder / "contact_sheet.png").is_file()
    prov = m.provenance
    assert prov["model"]["weights_sha256"] and prov["parameters"]["feature_vis"]["lr"] == 0.05
    for _, item in m.all_items():
        layer, channel = item.meta["layer"], item.meta["channel"]
        idx = item.meta["image_index"]
        with record_layers(demo_model, [layer], transform=spatial_mean) as acts, torch.no_grad():
            demo_model(demo_images.images[idx])
        a = acts[layer][:, channel]
        assert a[item.correct] > a[1 - item.correct], item.id  # correct = the option driving the unit more
        if item.condition == "none":
            assert item.context == []
        else:
            assert [g.label for g in item.context] == ["Strongly activating", "Weakly activating"]
    for item in m.catch_items:  # catch items reuse a reference image as the answer
        assert item.options[item.correct].image in item.context[0].images


def test_demo_forward_simulation(demo_sets, demo_world) -> None:
    folder = demo_sets["forward_simulation"]
    m = load_manifest(folder)
    roles = {c.name: c.role for c in m.conditions}
    assert roles["gradcam"] == "method" and roles["none"] == "baseline" and roles["edge"] == "baseline"
    assert roles["gradcam_random_model"] == "manipulated" and roles["gradcam_inverted"] == "manipulated"
    assert roles["gradient_permuted_labels"] == "manipulated"
    assert "fails_randomization_check" in m.condition("edge").flags
    assert m.condition("gradient").baselines == ["none", "edge", "random_map"]
    assert (folder / "sanity_check.json").is_file()
    model = demo_world.load("clean", device="cpu")
    from stimuli_builder.datasets import load_image_folder

    images = load_image_folder(demo_world.image_dir, 64)
    names = demo_world.class_names
    for _, item in m.all_items():
        assert all(o.text for o in item.options)
        with torch.no_grad():
            pred = int(model(images.images[item.meta["image_index"]][None]).argmax())
        assert item.options[item.correct].text == names[pred]


def test_demo_causal_occlusion(demo_sets, demo_model) -> None:
    m = load_manifest(demo_sets["causal_occlusion"])
    assert m.task == "causal_occlusion" and m.practice_items and m.catch_items
    assert {c.name for c in m.conditions} == {"feature_vis", "natural", "none"}
    for _, item in m.all_items():
        a = item.meta["activation"]
        assert a[item.correct] >= a[1 - item.correct], item.id


def test_demo_explanation_faithfulness(demo_sets) -> None:
    folder = demo_sets["explanation_faithfulness"]
    m = load_manifest(folder)
    roles = {c.name: c.role for c in m.conditions}
    assert roles["gradcam"] == "method" and roles["edge"] == "baseline"
    assert roles["gradcam_permuted_labels"] == "manipulated"
    assert m.condition("gradcam").baselines == ["edge"]
    for item in m.items:
        same = item.options[0].image == item.options[1].image
        assert same == (item.condition == "edge")  # only the model-blind control shows two equal maps
    assert (folder / "sanity_check.json").is_file()


def test_demo_trojan_rediscovery(demo_sets, demo_world) -> None:
    m = load_manifest(demo_sets["trojan_rediscovery"])
    assert m.task == "trojan_rediscovery"
    assert m.provenance["parameters"]["target_class"] == demo_world.params.trojan_target
    assert m.provenance["model"]["weights_sha256"]
    trigger_images = {item.options[item.correct].image for _, item in m.all_items()}
    assert len(trigger_images) == 1  # every correct answer is the same planted trigger
    assert all(item.options[1 - item.correct].image not in trigger_images for _, item in m.all_items())
