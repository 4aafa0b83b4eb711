"""compare_to_baselines and marginal_accuracy on simulated data with known effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import (DataError, baseline_pairs, compare_to_baselines, fit_glmm, marginal_accuracy,
                      simulate_trials)

CONDITIONS = [
    {"name": "fv", "role": "method", "baselines": ["natural", "none"]},
    {"name": "natural", "role": "baseline"},
    {"name": "none", "role": "baseline"},
    {"name": "fv_manip", "role": "manipulated"},
]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    # fv beats none by a lot, fv and same_as_fv are equal in truth
    return simulate_trials({"fv": 0.8, "same_as_fv": 0.8, "none": 0.6, "natural": 0.9},
                           n_participants=50, n_items=25, trials_per_participant=100, seed=11)


@pytest.fixture(scope="module")
def comparison(data):
    return compare_to_baselines(data, plan={"fv": ["none", "natural", "same_as_fv"]},
                                reference={"condition": "none"})


def test_pairs_from_manifest_and_plan():
    assert baseline_pairs(CONDITIONS) == [("fv", "natural"), ("fv", "none")]
    assert baseline_pairs(plan={"a": "b", "c": ["b", "d"]}) == [("a", "b"), ("c", "b"), ("c", "d")]
    with pytest.raises(DataError, match="no baselines"):
        baseline_pairs()
    with pytest.raises(DataError, match="own baseline"):
        baseline_pairs(plan={"a": ["a"]})


def test_contrasts_find_true_effects(comparison):
    c = comparison.contrasts.set_index("baseline")
    assert c.loc["none", "significant"] and c.loc["none", "odds_ratio"] > 1
    assert c.loc["natural", "significant"] and c.loc["natural", "odds_ratio"] < 1
    assert not c.loc["same_as_fv", "significant"]
    # truth on the logit scale: logit(.8) - logit(.6) = 0.981; within 2 SE
    truth = np.log(0.8 / 0.2) - np.log(0.6 / 0.4)
    assert abs(c.loc["none", "log_odds"] - truth) < 2 * c.loc["none", "std_error"]


def test_holm_and_odds_ratio_columns(comparison):
    c = comparison.contrasts
    p = np.sort(c["p_value"].to_numpy())
    holm = np.minimum(1, np.maximum.accumulate(p * np.arange(len(p), 0, -1)))
    assert np.allclose(np.sort(c["p_holm"].to_numpy()), holm)
    assert np.all(c["p_holm"] >= c["p_value"])
    assert np.allclose(c["odds_ratio"], np.exp(c["log_odds"]))
    assert np.all((c["or_ci_low"] < c["odds_ratio"]) & (c["odds_ratio"] < c["or_ci_high"]))
    assert np.allclose(c["acc_diff"], c["acc_method"] - c["acc_baseline"])


def test_log_odds_contrast_matches_coefficients(comparison):
    fx = comparison.fit.fixed.set_index("term")["estimate"]
    c = comparison.contrasts.set_index("baseline")
    assert c.loc["none", "log_odds"] == pytest.approx(fx["conditionfv"])
    assert c.loc["natural", "log_odds"] == pytest.approx(fx["conditionfv"] - fx["conditionnatural"])


def test_marginal_accuracy_close_to_raw_and_consistent(comparison):
    acc = comparison.accuracy.set_index("condition")
    # population-averaged model accuracy tracks raw accuracy in a balanced design
    assert np.all(np.abs(acc["accuracy"] - acc["raw_accuracy"]) < 0.02)
    assert np.all((acc["ci_low"] < acc["accuracy"]) & (acc["accuracy"] < acc["ci_high"]))
    assert np.all((acc["wilson_low"] < acc["raw_accuracy"]) & (acc["raw_accuracy"] < acc["wilson_high"]))
    # averaging over random effects pulls accuracy towards 0.5 relative to the typical participant
    assert np.all(np.abs(acc["accuracy"] - 0.5) < np.abs(acc["accuracy_typical"] - 0.5))


def test_marginal_accuracy_without_random_variance_is_inverse_logit():
    df = simulate_trials({"a": 0.7, "b": 0.5}, n_participants=20, n_items=10, trials_per_participant=40,
                         participant_sd=0.0, item_sd=0.0, seed=3)
    fit = fit_glmm(df, "correct ~ condition + (1|participant_id)")
    acc = marginal_accuracy(fit).set_index("condition")
    var = fit.random["variance"].sum()
    b = fit.fixed.set_index("term")["estimate"]
    if var < 1e-8:  # singular: marginal equals conditional
        assert acc.loc["a", "accuracy"] == pytest.approx(1 / (1 + np.exp(-b["(Intercept)"])), abs=1e-9)
    assert acc.loc["a", "accuracy"] == pytest.approx(acc.loc["a", "accuracy_typical"], abs=2e-3)


def test_condition_without_data(data):
    with pytest.raises(DataError, match="without data: ghost"):
        compare_to_baselines(data, plan={"fv": ["ghost"]})
    fit = fit_glmm(data[data["condition"].isin(["fv", "none"])], "correct ~ condition + (1|participant_id)")
    with pytest.raises(DataError, match="natural"):
        compare_to_baselines(fit, conditions=CONDITIONS)
