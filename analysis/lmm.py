"""Linear mixed models by profiled (RE)ML, following Bates et al. (2015, JSS 67(1)).

For relative covariance factors ``theta`` (Lambda), the fixed effects and the residual
variance are profiled out: one Cholesky factor ``L`` of ``Lambda'Z'Z Lambda + I`` and one
of the Schur complement ``RX`` give the penalised residual sum of squares and the log
determinants. All ``n``-sized work (``Z'Z``, ``Z'X``, ``Z'y``, ...) is done once, so each
deviance evaluation costs only ``O(q^3)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg

from ._blas import blas_threads
from .optim import minimize_bounded
from .prepare import ModelData, prepare
from .results import MixedModelResult

__all__ = ["fit_lmm"]


@dataclass
class _Profile:
    deviance: float
    beta: np.ndarray
    u: np.ndarray
    pwrss: float
    RX: np.ndarray  # lower Cholesky factor of the Schur complement


class _LmmProblem:
    def __init__(self, md: ModelData, reml: bool):
        self.md, self.reml = md, reml
        re, X, y = md.re, md.X, md.y
        self.n, self.p = X.shape
        self.ZtZ = re.ztwz(np.ones(self.n))
        self.ZtX = re.zt_times(X)
        self.Zty = re.zt_times(y)
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)
        self.I = np.eye(re.q)

    def profile(self, theta: np.ndarray) -> _Profile:
        re = self.md.re
        lam = re.lambda_matrix(theta)
        if lam.ndim == 1:
            A = lam[:, None] * self.ZtZ * lam[None, :] + self.I
            LtZtX = lam[:, None] * self.ZtX
            LtZty = lam * self.Zty
        else:
            A = lam.T @ self.ZtZ @ lam + self.I
            LtZtX = lam.T @ self.ZtX
            LtZty = lam.T @ self.Zty
        L = re.cholesky(A)
        cu = L.solve_L(LtZty)
        RZX = L.solve_L(LtZtX)
        S = self.XtX - RZX.T @ RZX
        RX = linalg.cholesky(S, lower=True, check_finite=False)
        cb = linalg.solve_triangular(RX, self.Xty - RZX.T @ cu, lower=True, check_finite=False)
        beta = linalg.solve_triangular(RX.T, cb, lower=False, check_finite=False)
        u = L.solve_Lt(cu - RZX @ beta)
        pwrss = max(self.yty - cu @ cu - cb @ cb, 1e-300)
        ldL2 = L.logdet
        if self.reml:
            nmp = self.n - self.p
            ldRX2 = 2.0 * np.log(np.diag(RX)).sum()
            dev = ldL2 + ldRX2 + nmp * (1.0 + np.log(2 * np.pi * pwrss / nmp))
        else:
            dev = ldL2 + self.n * (1.0 + np.log(2 * np.pi * pwrss / self.n))
        return _Profile(float(dev), beta, u, float(pwrss), RX)

    def deviance(self, theta: np.ndarray) -> float:
        try:
            return self.profile(theta).deviance
        except (linalg.LinAlgError, ValueError):
            return np.inf


def fit_lmm(
    data: pd.DataFrame,
    formula: str,
    reml: bool = True,
    reference: Mapping[str, object] | None = None,
) -> MixedModelResult:
    """Fit a linear mixed model (lme4's ``lmer``).

    Parameters
    ----------
    data : DataFrame
        Rows with missing values in the formula's columns are dropped (noted in warnings).
    formula : str
        lme4-style, e.g. ``"log(rt_ms) ~ condition + (1|participant_id) + (1|item_id)"`` or
        ``"Reaction ~ Days + (Days|Subject)"`` (correlated slopes are supported).
    reml : bool, default True
        REML (lme4's default) or maximum likelihood.
    reference : mapping, optional
        Reference level per factor, e.g. ``{"condition": "none"}``.

    Returns
    -------
    MixedModelResult
        Standard errors are ``sigma * RX^-1`` (conditional on theta, as lme4 and
        MixedModels.jl); p-values are Wald z.
    """
    t0 = time.perf_counter()
    md = prepare(data, formula, reference)
    prob = _LmmProblem(md, reml)
    lower = md.re.theta_lower()
    with blas_threads(1):
        opt = minimize_bounded(prob.deviance, md.re.theta_init(), lower)
        theta = opt.x
        prof = prob.profile(theta)
    n, p = prob.n, prob.p
    denom = n - p if reml else n
    sigma = float(np.sqrt(prof.pwrss / denom))
    RXinv = linalg.solve_triangular(prof.RX, np.eye(p), lower=True)
    vcov = sigma**2 * RXinv.T @ RXinv
    lam = md.re.lambda_matrix(theta)
    b = lam * prof.u if lam.ndim == 1 else lam @ prof.u
    warnings = []
    if md.n_dropped:
        warnings.append(f"{md.n_dropped} row(s) with missing values were dropped")
    if not opt.converged:
        warnings.append(f"convergence: {opt.message}")
    # REML: lme4's logLik() of a REML fit is -criterion/2
    loglik = -0.5 * prof.deviance
    res = MixedModelResult(
        family="gaussian", method="REML" if reml else "ML", formula=md.formula.text,
        terms=list(md.design.columns), beta=prof.beta, vcov_beta=vcov, theta=theta,
        sigma=sigma, loglik=float(loglik), nobs=n, n_params=p + len(theta) + 1,
        converged=opt.converged, warnings=warnings, se_method="sigma * RX^-1 (conditional on theta)",
        ranef_modes=b, model_data=md, criterion=prof.deviance,
    )
    if res.singular:
        res.warnings.append("singular fit: a random-effects variance is estimated at (or near) zero")
    res.fit_seconds = time.perf_counter() - t0
    return res
