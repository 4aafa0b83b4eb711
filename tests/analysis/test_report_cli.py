"""The report and the `interp-study analyze` command on a small simulated export."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import simulate_power, simulate_trials
from analysis.cli import analyze

PLAN = """\
reference: {condition: none}
baselines: {fv: [natural, none]}
exclusions: {catch_min_accuracy: 0.8, min_rt_ms: 200, max_fast_fraction: 0.1, max_side_bias: 0.9}
power: {n_participants: [8, 16], n_sims: 4}
"""


@pytest.fixture
def export(tmp_path):
    df = simulate_trials({"fv": 0.8, "natural": 0.9, "none": 0.65}, n_participants=24, n_items=12,
                         trials_per_participant=36, n_catch=4, seed=21)
    df.loc[df["participant_id"] == "p0002", "chosen_side"] = 0
    path = tmp_path / "export.csv"
    df.to_csv(path, index=False)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    return path, plan


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_analyze_writes_a_deterministic_report(export, tmp_path):
    path, plan = export
    runner = CliRunner()
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        res = runner.invoke(analyze, [str(path), "--plan", str(plan), "--out", str(out), "--seed", "3", "--jobs", "1"])
        assert res.exit_code == 0, res.output
        outs.append(out)
    names = {p.name for p in outs[0].iterdir()}
    assert {"report.html", "report.md", "accuracy.png", "rt.png", "power.png", "contrasts.csv", "fixed_effects.csv",
            "random_effects.csv", "exclusions.csv", "accuracy.csv", "power.csv"} <= names
    md = (outs[0] / "report.md").read_text()
    for heading in ("## Data", "## Exclusions", "## Methods against baselines", "## Accuracy model",
                    "## Reaction-time model", "## Power"):
        assert heading in md
    assert "p0002" in md  # excluded for side bias, and named
    html = (outs[0] / "report.html").read_text()
    assert "<table>" in html and 'src="accuracy.png"' in html
    contrasts = pd.read_csv(outs[0] / "contrasts.csv")
    assert set(zip(contrasts["method"], contrasts["baseline"])) == {("fv", "natural"), ("fv", "none")}
    assert _digest(outs[0]) == _digest(outs[1])


def test_analyze_without_power_or_plan(export, tmp_path):
    path, _ = export
    res = CliRunner().invoke(analyze, [str(path), "--out", str(tmp_path / "o"), "--no-power"])
    assert res.exit_code == 0, res.output
    assert "no baselines" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.drop(columns=["family"]), "family"),
    (lambda d: d.assign(correct=d["correct"].replace(0, 7)), "0 or 1"),
    (lambda d: d[d["condition"] != "natural"], "natural"),
])
def test_bad_input_is_a_clean_error(export, tmp_path, mutate, message):
    path, plan = export
    bad = tmp_path / "bad.csv"
    mutate(pd.read_csv(path)).to_csv(bad, index=False)
    res = CliRunner().invoke(analyze, [str(bad), "--plan", str(plan), "--out", str(tmp_path / "o"), "--no-power"])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


def test_bad_plan_is_a_clean_error(export, tmp_path):
    path, plan = export
    plan.write_text("exclusions: {max_side_bias: 2}\n")
    res = CliRunner().invoke(analyze, [str(path), "--plan", str(plan), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "max_side_bias" in res.output


def test_power_is_reproducible_and_monotone_in_effect():
    kw = dict(n_participants=[6, 12], n_items=10, trials_per_participant=30, n_sims=6, seed=5, progress=False)
    a = simulate_power({"m": 0.85, "b": 0.55}, {"m": ["b"]}, n_jobs=2, **kw)
    b = simulate_power({"m": 0.85, "b": 0.55}, {"m": ["b"]}, n_jobs=1, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["n_participants", "method", "baseline", "power", "ci_low", "ci_high", "n_sims",
                               "n_failed"]
    null = simulate_power({"m": 0.7, "b": 0.7}, {"m": ["b"]}, n_jobs=1, **kw)
    assert a["power"].iloc[-1] >= 0.8  # a large effect with 12 participants
    assert null["power"].mean() <= 0.5
