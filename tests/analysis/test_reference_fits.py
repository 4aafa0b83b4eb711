"""Our fits against published lme4 / MixedModels.jl fits.

Every expected number comes from ../shared/reference/lme4/expected.json, which names its
source per model (lme4's tests and pkgdown pages, MixedModels.jl's docs and tests).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import fit_glmm, fit_lmm

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return fit_glmm(cbpp, CBPP, reference={"period": 1})


def test_cbpp_terms_follow_reference_level(cbpp_fit):
    assert list(cbpp_fit.fixed["term"]) == ["(Intercept)", "period2", "period3", "period4"]


def test_cbpp_fixed_effects(cbpp_fit, expected):
    # lme4 tests/testthat/test-glmer.R (precise fixef); tolerance 1e-3 from expected.json
    ref = expected["cbpp_glmer_laplace"]
    est = cbpp_fit.fixed.set_index("term")["estimate"]
    for term, value in ref["fixef"].items():
        assert est[term] == pytest.approx(value, abs=ref["tolerance"]["fixef_abs"]), term


def test_cbpp_random_sd_theta_loglik_aic(cbpp_fit, expected):
    ref = expected["cbpp_glmer_laplace"]
    assert cbpp_fit.random.loc[0, "group"] == "herd"
    assert cbpp_fit.random.loc[0, "sd"] == pytest.approx(ref["random_sd"]["herd"], abs=ref["tolerance"]["sd_abs"])
    assert cbpp_fit.random.loc[0, "variance"] == pytest.approx(ref["random_var"]["herd"], abs=1e-3)
    assert cbpp_fit.theta[0] == pytest.approx(ref["theta"][0], abs=1e-4)
    # MixedModels.jl test/pirls.jl logLik; lme4 AIC
    assert cbpp_fit.loglik == pytest.approx(ref["logLik_julia"], abs=ref["tolerance"]["logLik_abs"])
    assert cbpp_fit.aic == pytest.approx(ref["AIC"], abs=0.01)
    assert cbpp_fit.converged and not cbpp_fit.singular


def test_cbpp_standard_errors(cbpp_fit, expected):
    # lme4 summary() SEs (finite-difference Hessian); we use an accurate Hessian of the
    # Laplace deviance in (theta, beta); se_note says the two differ by about 1%.
    ref = expected["cbpp_glmer_laplace"]
    se = cbpp_fit.fixed.set_index("term")["std_error"]
    for term, value in ref["se"].items():
        assert se[term] == pytest.approx(value, rel=ref["tolerance"]["se_rel"]), term
    exact = dict(zip(ref["fixef"], [0.2325, 0.3066, 0.3266, 0.4274]))  # from se_note
    for term, value in exact.items():
        assert se[term] == pytest.approx(value, rel=2e-3), term


def test_cbpp_rx_standard_errors(cbpp, expected):
    fit = fit_glmm(cbpp, CBPP, reference={"period": "1"}, se="rx")
    rx = [0.2279, 0.3054, 0.3260, 0.4288]  # se_note: RX-based, MixedModels.jl style
    assert np.allclose(fit.fixed["std_error"], rx, rtol=2e-3)


def test_cbpp_odds_ratio_and_wald_columns(cbpp_fit):
    fx = cbpp_fit.fixed
    assert list(fx.columns) == ["term", "estimate", "std_error", "statistic", "p_value",
                                "ci_low", "ci_high", "odds_ratio"]
    assert np.allclose(fx["odds_ratio"], np.exp(fx["estimate"]))
    assert np.allclose(fx["statistic"], fx["estimate"] / fx["std_error"])
    assert np.all((fx["ci_low"] < fx["estimate"]) & (fx["estimate"] < fx["ci_high"]))
    assert "herd" in cbpp_fit.summary() and "period4" in cbpp_fit.summary()


@pytest.mark.parametrize("reml,key", [(True, "sleepstudy_lmer_REML"), (False, "sleepstudy_lmer_ML")])
def test_sleepstudy(sleepstudy, expected, reml, key):
    ref = expected[key]
    tol = ref["tolerance"]
    fit = fit_lmm(sleepstudy, SLEEP, reml=reml)
    fx = fit.fixed.set_index("term")
    for term, value in ref["fixef"].items():
        assert fx.loc[term, "estimate"] == pytest.approx(value, abs=tol["fixef_abs"]), term
    for term, value in ref["se"].items():
        # printed SEs carry 4 significant digits: allow their rounding as well
        assert fx.loc[term, "std_error"] == pytest.approx(value, rel=tol["se_rel"], abs=5e-4), term
    rnd = fit.random.set_index(["group", "term"])["sd"]
    for name, value in ref["random_sd"].items():
        group, term = name.split(".", 1)
        assert rnd[(group, term)] == pytest.approx(value, rel=tol["sd_rel"]), name
    assert fit.sigma == pytest.approx(ref["residual_sd"], rel=1e-3)
    corr = fit.random_corr.loc[0, "corr"]
    assert corr == pytest.approx(ref["random_corr"]["Subject.(Intercept):Days"], abs=0.005)
    if reml:
        assert fit.criterion == pytest.approx(ref["REML_criterion"], abs=tol["criterion_abs"])
        vc = fit.vcov.to_numpy()
        assert vc[0, 1] / np.sqrt(vc[0, 0] * vc[1, 1]) == pytest.approx(ref["fixef_corr"]["(Intercept):Days"], abs=5e-4)
    else:
        assert fit.loglik == pytest.approx(ref["logLik"], abs=tol["logLik_abs"])
    assert fit.converged and not fit.warnings
