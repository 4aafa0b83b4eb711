"""Simulated participants: the dial policy's statistics, the CLI, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from interp_study.bots import BotSettings, DialPolicy, parse_accuracy
from interp_study.httpclient import TrialView
from stimuli_builder.manifest import Item
from tests.conftest import LiveServer, run_cli


def test_parse_accuracy() -> None:
    assert parse_accuracy("natural=0.9, feature_vis=0.8,none=0.6") == {"natural": 0.9, "feature_vis": 0.8, "none": 0.6}
    for bad, msg in [("natural", "CONDITION=PROBABILITY"), ("natural=high", "not a number"), ("none=1.0", "strictly")]:
        with pytest.raises(ValueError, match=msg):
            parse_accuracy(bad)


def _view(condition: str, key: str, correct_side: int = 1) -> TrialView:
    item = Item(id=key, condition=condition, family="f", prompt="p", options=[{"text": "a"}, {"text": "b"}], correct=0)
    return TrialView({"id": 1, "kind": "main", "position": 1, "options": [{"text": "a"}, {"text": "b"}]}, item, correct_side)


def test_dial_policy_hits_the_set_accuracy_without_random_effects() -> None:
    settings = BotSettings(accuracy={"a": 0.9, "b": 0.6}, participant_sd=0.0, item_sd=0.0, seed=3)
    for cond, p in (("a", 0.9), ("b", 0.6)):
        hits = 0
        n = 4000
        for i in range(n):
            policy = DialPolicy(settings, i)
            choice, rt = policy(_view(cond, f"{cond}/{i % 10}"))
            hits += int(choice == 1)
            assert rt > 200
        se = math.sqrt(p * (1 - p) / n)
        assert abs(hits / n - p) < 4 * se


def test_dial_policy_random_effects_have_the_set_spread() -> None:
    settings = BotSettings(accuracy={"a": 0.7}, participant_sd=0.8, item_sd=0.3, seed=1)
    us = np.array([DialPolicy(settings, i).u for i in range(3000)])
    assert abs(us.std() - 0.8) < 0.05 and abs(us.mean()) < 0.05
    policy = DialPolicy(settings, 0)
    assert policy.item_effect("x/1") == DialPolicy(settings, 5).item_effect("x/1")  # shared across participants
    effects = np.array([policy.item_effect(f"item/{k}") for k in range(3000)])
    assert abs(effects.std() - 0.3) < 0.03


@pytest.mark.slow
def test_bots_cli_against_live_server(sqlite_url: str, experiment_file: Path, tiny_set: Path, tmp_path: Path) -> None:
    assert run_cli("experiment", "create", str(experiment_file), "--database-url", sqlite_url).returncode == 0
    server = LiveServer(sqlite_url, tmp_path / "inst")
    try:
        done = run_cli("bots", "tiny", "--url", server.url, "--n", "4", "--concurrency", "2", "--stimuli", str(tiny_set),
                       "--accuracy", "reference=0.95,none=0.55", "--seed", "5")
        assert done.returncode == 0, done.stderr
        assert "4 finished, 0 dropped out, 0 errors" in done.stdout
        bad = run_cli("bots", "tiny", "--url", server.url, "--accuracy", "reference=2", "--stimuli", str(tiny_set))
        assert bad.returncode != 0 and "strictly between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        server.stop()
    gone = run_cli("bots", "tiny", "--url", server.url, "--stimuli", str(tiny_set))
    assert gone.returncode != 0 and "does not answer" in gone.stderr


@pytest.mark.slow
def test_observer_policy_reads_the_images(sqlite_url: str, tiny_set: Path, tmp_path: Path) -> None:
    """The observer sees only what a participant sees: with a reference image ("bigger looks
    like this") it picks the option that resembles it; without one it can only guess."""
    from stimuli_builder.tiny import write_tiny_experiment
    from interp_study.bots import run_bots
    from interp_study.httpclient import ManifestOracle

    path = write_tiny_experiment(tmp_path / "obs", tiny_set, slug="obs", trials=24)
    assert run_cli("experiment", "create", str(path), "--database-url", sqlite_url).returncode == 0
    server = LiveServer(sqlite_url, tmp_path / "inst")
    try:
        result = run_bots(server.url, "obs", 5, BotSettings(seed=11), ManifestOracle(tiny_set), policy="observer",
                          concurrency=5)
    finally:
        server.stop()
    assert result.errors == [] and result.finished == 5
    acc = {cond: k / n for cond, (k, n) in result.accuracy_by_condition().items()}
    assert result.accuracy_by_condition()["reference"][1] == 60
    assert acc["reference"] >= 0.9, acc
    assert acc["none"] <= 0.75, acc
