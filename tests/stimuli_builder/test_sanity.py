"""The randomization sanity check (Adebayo et al. 2018) must tell real methods from controls."""

from __future__ import annotations

import torch

from stimuli_builder import explain
from stimuli_builder.manipulate import cascading_randomization, randomizable_layers
from stimuli_builder.sanity import FAILS_FLAG, spearman, ssim, sanity_check


def test_gradient_changes_edge_detector_does_not(demo_model, demo_images) -> None:
    x = demo_images.images[:6]
    with torch.no_grad():
        target = demo_model(x).argmax(1)
    checks = sanity_check(demo_model, x, target, {"gradient": explain.gradient, "edge": explain.edge}, seed=0)
    g, e = checks["gradient"], checks["edge"]
    assert len(g.steps) == len(randomizable_layers(demo_model))
    assert g.steps[0] == "fc"  # top layer first
    assert g.passed and g.spearman[-1] < 0.5 and g.ssim[-1] < 0.5
    assert not e.passed and min(e.spearman) > 0.999 and min(e.ssim) > 0.999


def test_cascade_is_cumulative_and_leaves_the_model_alone(demo_model) -> None:
    before = {k: v.clone() for k, v in demo_model.state_dict().items()}
    steps = list(cascading_randomization(demo_model, seed=0))
    for k, v in demo_model.state_dict().items():
        assert torch.equal(v, before[k])
    last = dict(steps[-1][1].named_parameters())
    first = dict(steps[0][1].named_parameters())
    assert not torch.equal(first["fc.weight"], before["fc.weight"])
    assert torch.equal(first["block1.0.weight"], before["block1.0.weight"])
    assert not torch.equal(last["block1.0.weight"], before["block1.0.weight"])


def test_metrics_on_known_maps() -> None:
    a = torch.rand((2, 16, 16), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(spearman(a, a), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(spearman(a, -a), -torch.ones(2, dtype=torch.float64))
    assert torch.allclose(spearman(a, a ** 3), torch.ones(2, dtype=torch.float64))  # ranks only
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    assert (ssim(a, 1 - a) < 0).all()
    assert FAILS_FLAG == "fails_randomization_check"
