"""Preregistered exclusions and the analysis plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import DataError, apply_exclusions, load_plan, simulate_trials

RULES = {"catch_min_accuracy": 0.8, "min_rt_ms": 200, "max_fast_fraction": 0.1, "max_side_bias": 0.9,
         "require_complete": True}


@pytest.fixture
def trials() -> pd.DataFrame:
    df = simulate_trials({"a": 0.8, "b": 0.7}, n_participants=10, n_items=10, trials_per_participant=20,
                         n_catch=5, seed=4)
    df.loc[df["kind"] == "catch", "correct"] = 1
    df["rt_ms"] = 900.0
    pids = sorted(df["participant_id"].unique())
    main = df["kind"] == "main"
    # p0: fails catch (2 of 5 correct)
    idx = df.index[(df["participant_id"] == pids[0]) & (df["kind"] == "catch")][:3]
    df.loc[idx, "correct"] = 0
    # p1: 25% of main answers under 200 ms
    idx = df.index[(df["participant_id"] == pids[1]) & main][:5]
    df.loc[idx, "rt_ms"] = 150.0
    # p2: always presses right
    df.loc[(df["participant_id"] == pids[2]) & main, "chosen_side"] = 1
    # p3: one unanswered main trial
    idx = df.index[(df["participant_id"] == pids[3]) & main][:1]
    df["correct"] = df["correct"].astype(float)
    df.loc[idx, ["correct", "chosen_side", "rt_ms"]] = np.nan
    # p4: marked by the server
    df.loc[df["participant_id"] == pids[4], ["excluded", "exclusion_reason"]] = [1, "focus lost 5 times"]
    # p5: one row marked excluded (a trial), participant stays
    df.loc[df.index[(df["participant_id"] == pids[5]) & main][:1], "excluded"] = 1
    return df


def test_each_rule_names_its_participant(trials):
    kept, table = apply_exclusions(trials, RULES)
    pids = sorted(trials["participant_id"].unique())
    got = dict(zip(table["participant_id"], table["rule"]))
    assert got == {pids[0]: "catch_min_accuracy", pids[1]: "max_fast_fraction", pids[2]: "max_side_bias",
                   pids[3]: "require_complete", pids[4]: "export"}
    assert list(table.columns) == ["participant_id", "rule", "value", "threshold", "reason"]
    assert "focus lost" in table.set_index("rule").loc["export", "reason"]
    assert table.set_index("rule").loc["catch_min_accuracy", "value"] == pytest.approx(0.4)
    assert table.set_index("rule").loc["max_fast_fraction", "value"] == pytest.approx(0.25)
    assert set(kept["participant_id"]) == set(pids[5:])
    assert len(kept[kept["participant_id"] == pids[5]]) == 24  # 25 rows less the marked trial


def test_no_rules_only_respects_export(trials):
    kept, table = apply_exclusions(trials, None)
    assert list(table["rule"]) == ["export"]
    assert kept["participant_id"].nunique() == 9


def test_rules_from_plan_mapping(trials):
    _, table = apply_exclusions(trials, {"exclusions": {"max_side_bias": 0.95}})
    assert set(table["rule"]) == {"export", "max_side_bias"}


def test_expected_trials(trials):
    _, table = apply_exclusions(trials, {"require_complete": True, "expected_main_trials": 25})
    assert (table["rule"] == "require_complete").sum() == 10  # every participant, several reasons allowed


def test_plan_yaml_and_errors(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("baselines: {fv: natural}\nreference: {condition: none}\nexclusions: {max_side_bias: 0.9}\n")
    plan = load_plan(p)
    assert plan.baselines == {"fv": ["natural"]} and plan.exclusions.max_side_bias == 0.9
    p.write_text("exclusions: {max_side_bias: 1.5}\n")
    with pytest.raises(DataError, match=r"exclusions\.max_side_bias"):
        load_plan(p)
    p.write_text("exclusion: {}\n")
    with pytest.raises(DataError, match="exclusion"):
        load_plan(p)
    p.write_text("a: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_plan(p)
    with pytest.raises(DataError, match="not found"):
        load_plan(tmp_path / "missing.yaml")


def test_plan_from_experiment_yaml(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("slug: fv\nstimuli: s\ntrials_per_participant: 45\ncatch: {trials: 6, min_accuracy: 0.8}\n"
                 "analysis: {baselines: {feature_vis: [natural, none]}}\n")
    plan = load_plan(p)
    assert plan.baselines == {"feature_vis": ["natural", "none"]}
    assert plan.exclusions.catch_min_accuracy == 0.8 and plan.exclusions.expected_main_trials == 45


def test_experiment_file_as_plan_uses_the_servers_exclusion_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An experiment YAML used as the plan: fast responses are judged against its timing.min_rt_ms
    (the server's default 200 ms when absent) and incomplete sessions are excluded, as on the server."""
    from analysis import load_plan

    path = tmp_path / "exp.yaml"
    path.write_text("slug: s\ntitle: t\nstimuli: x\nconditions: [a, b]\ntrials_per_participant: 10\n"
                    "analysis: {exclusions: {max_fast_fraction: 0.2}}\n")
    plan = load_plan(path)
    assert plan.exclusions.min_rt_ms == 200 and plan.exclusions.require_complete is True
    assert plan.exclusions.max_fast_fraction == 0.2
    assert plan.exclusions.max_rt_ms is None  # no time limit, no slow-trial rule
    path.write_text(path.read_text() + "timing: {min_rt_ms: 350, max_trial_seconds: 12}\n")
    plan = load_plan(path)
    assert plan.exclusions.min_rt_ms == 350
    assert plan.exclusions.max_rt_ms == 12_000  # answers after the trial's time limit are dropped
