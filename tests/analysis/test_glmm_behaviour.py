"""fit_glmm / fit_lmm on simulated data: recovery, formulas, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import DataError, fit_glmm, fit_lmm, parse_formula, simulate_trials
from analysis.formula import FormulaError

FORMULA = "correct ~ condition + (1|participant_id) + (1|family)"


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    # 60 participants x 80 trials, as in the issue
    return simulate_trials({"a": 0.6, "b": 0.75, "c": 0.85}, n_participants=60, n_items=40,
                           trials_per_participant=80, participant_sd=0.7, item_sd=0.5, seed=2024)


def test_parameter_recovery_within_two_se(sim):
    fit = fit_glmm(sim, FORMULA, reference={"condition": "a"})
    truth = {"(Intercept)": np.log(0.6 / 0.4),
             "conditionb": np.log(0.75 / 0.25) - np.log(0.6 / 0.4),
             "conditionc": np.log(0.85 / 0.15) - np.log(0.6 / 0.4)}
    fx = fit.fixed.set_index("term")
    for term, value in truth.items():
        assert abs(fx.loc[term, "estimate"] - value) < 2 * fx.loc[term, "std_error"], term
        assert fx.loc[term, "ci_low"] < value < fx.loc[term, "ci_high"], term
    sd = fit.random.set_index("group")["sd"]
    # SDs of 60 participants and 120 items: loose but real bounds (sampling SE ~0.08-0.1)
    assert sd["participant_id"] == pytest.approx(0.7, abs=0.2)
    assert sd["family"] == pytest.approx(0.5, abs=0.2)
    assert fit.converged and fit.warnings == []


def test_rx_and_hessian_se_agree_roughly(sim):
    a = fit_glmm(sim, FORMULA, se="hessian")
    b = fit_glmm(sim, FORMULA, se="rx")
    assert np.allclose(a.fixed["estimate"], b.fixed["estimate"])
    assert np.allclose(a.fixed["std_error"], b.fixed["std_error"], rtol=0.05)


def test_lmm_on_log_rt_recovers_no_effect(sim):
    fit = fit_lmm(sim, "log(rt_ms) ~ condition + (1|participant_id) + (1|family)")
    fx = fit.fixed.set_index("term")
    assert fx.loc["(Intercept)", "estimate"] == pytest.approx(7.0, abs=0.05)  # simulate_trials: log-mean 7
    assert fit.sigma == pytest.approx(0.4, abs=0.02)
    assert np.isnan(fit.fixed["odds_ratio"]).all()


def test_predict_and_contrast(sim):
    fit = fit_glmm(sim, FORMULA)
    new = pd.DataFrame({"condition": ["a", "c"]})
    p = fit.predict(new)
    b = fit.fixed.set_index("term")["estimate"]
    assert p[1] == pytest.approx(1 / (1 + np.exp(-(b["(Intercept)"] + b["conditionc"]))))
    c = fit.contrast([[0, 1, -1]], names=["b - c"])
    assert c.loc[0, "estimate"] == pytest.approx(b["conditionb"] - b["conditionc"])
    with pytest.raises(DataError, match="not seen"):
        fit.predict(pd.DataFrame({"condition": ["zzz"]}))
    re = fit.ranef()
    assert set(re["group"]) == {"participant_id", "family"} and len(re) == 60 + 120


def test_uncorrelated_slopes_parse_and_fit(sim):
    f = parse_formula("correct ~ x + (1 + x || participant_id)")
    assert [(r.intercept, r.slopes) for r in f.random] == [(True, ()), (False, ("x",))]
    d = sim.assign(x=sim["position"] / 80.0)
    fit = fit_glmm(d, "correct ~ condition + x + (1 + x || participant_id) + (1|family)")
    pairs = set(zip(fit.random["group"], fit.random["term"]))
    assert pairs == {("family", "(Intercept)"), ("participant_id", "(Intercept)"), ("participant_id", "x")}
    assert fit.random_corr.empty  # || means no correlation parameter
    assert len(fit.theta) == 3 and fit.converged


def test_formula_errors():
    for bad, msg in [("y ~ x ~ z", "exactly one"), ("y ~ (1|g/h)", "nested"), ("y ~ log(x) + (1|g)", "column"),
                     ("y ~ a + (1|)", "grouping")]:
        with pytest.raises(FormulaError, match=msg):
            parse_formula(bad)


def test_bad_outcome(sim):
    d = sim.copy()
    d.loc[5, "correct"] = 2
    with pytest.raises(DataError, match="0 or 1"):
        fit_glmm(d, FORMULA)
    with pytest.raises(DataError, match="no variation"):
        fit_glmm(sim.assign(correct=1), FORMULA)


def test_missing_columns_and_no_random_term(sim):
    with pytest.raises(DataError, match="not in the data: ghost"):
        fit_glmm(sim, "correct ~ ghost + (1|participant_id)")
    with pytest.raises(DataError, match="random-effects"):
        fit_glmm(sim, "correct ~ condition")
    with pytest.raises(DataError, match="reference level 'zzz'"):
        fit_glmm(sim, FORMULA, reference={"condition": "zzz"})


def test_rank_deficient_design_names_the_column(sim):
    d = sim.copy()
    d["condition"] = pd.Categorical(d["condition"], categories=["a", "b", "c"])
    d["block2"] = np.where(d["condition"] == "a", "x", "y")
    with pytest.raises(DataError, match="rank deficient"):
        fit_glmm(d, "correct ~ condition + block2 + (1|participant_id)")


def test_singular_fit_is_reported():
    d = simulate_trials({"a": 0.7, "b": 0.8}, n_participants=30, n_items=10, trials_per_participant=40,
                        participant_sd=0.0, item_sd=0.0, seed=8)
    fit = fit_glmm(d, FORMULA)
    if fit.singular:
        assert any("singular" in w for w in fit.warnings)
        assert "singular" in fit.summary()
    else:  # zero true variance usually gives a boundary estimate; if not, it is tiny
        assert fit.random["sd"].max() < 0.3


def test_missing_rows_are_dropped_with_warning(sim):
    d = sim.copy()
    d["correct"] = d["correct"].astype(float)
    d.loc[:9, "correct"] = np.nan
    fit = fit_glmm(d, FORMULA)
    assert fit.nobs == len(sim) - 10
    assert any("10 row(s)" in w for w in fit.warnings)
