"""Logistic mixed models by the Laplace approximation, as lme4's ``glmer`` (nAGQ = 1).

Given relative covariance factors ``theta`` (Lambda) and fixed effects ``beta``, penalised
iteratively reweighted least squares (PIRLS, Newton on the spherical random effects ``u``)
finds the conditional mode; the Laplace deviance is
``-2 log p(y | u) + |u|^2 + log det(Lambda'Z'WZ Lambda + I)``. As in lme4, a first stage
optimises over ``theta`` with ``beta`` found jointly with ``u`` by PIRLS (nAGQ = 0), and a
second stage optimises the Laplace deviance over ``theta`` and ``beta`` together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.special import expit, gammaln

from .load import DataError
from ._blas import blas_threads
from .optim import minimize_bounded, newton_fd, numeric_hessian
from .prepare import ModelData, prepare
from .results import MixedModelResult

__all__ = ["fit_glmm"]


class _GlmmProblem:
    """Laplace deviance of a binomial-logit GLMM as a function of theta and beta."""

    def __init__(self, md: ModelData):
        self.md = md
        self.re = md.re
        self.X, self.y, self.m = md.X, md.y, md.weights
        self.k = self.y * self.m
        self.my = self.m * self.y
        self.log_choose = float(np.sum(gammaln(self.m + 1) - gammaln(self.k + 1) - gammaln(self.m - self.k + 1)))
        self.u = np.zeros(self.re.q)
        self.I = np.eye(self.re.q)

    # ---- pieces -----------------------------------------------------------------------
    def _lam(self, theta: np.ndarray) -> np.ndarray:
        return self.re.lambda_matrix(theta)

    @staticmethod
    def _lam_t(lam: np.ndarray, v: np.ndarray) -> np.ndarray:
        if lam.ndim == 1:
            return lam[:, None] * v if v.ndim == 2 else lam * v
        return lam.T @ v

    def _eta(self, lam: np.ndarray, u: np.ndarray, offset: np.ndarray) -> np.ndarray:
        b = lam * u if lam.ndim == 1 else lam @ u
        return offset + self.re.z_times(b)

    def loglik_y(self, eta: np.ndarray) -> float:
        """Binomial log-likelihood without the choose constant."""
        # y log(mu) + (1 - y) log(1 - mu) = y * eta - log(1 + exp(eta))
        return float(self.my @ eta - self.m @ np.logaddexp(0, eta))

    def _A(self, lam: np.ndarray, w: np.ndarray) -> np.ndarray:
        M = self.re.ztwz(w)
        if lam.ndim == 1:
            M *= lam[:, None]
            M *= lam[None, :]
        else:
            M = lam.T @ M @ lam
        M[np.diag_indices_from(M)] += 1.0
        return M

    # ---- PIRLS on u with beta fixed ------------------------------------------------------
    def pirls_u(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None,
                tol: float = 1e-10, maxit: int = 50) -> tuple[float, np.ndarray, np.ndarray]:
        lam = self._lam(theta)
        offset = self.X @ beta
        u = (self.u if u0 is None else u0).copy()
        eta = self._eta(lam, u, offset)
        pdev = -2 * self.loglik_y(eta) + u @ u
        for _ in range(maxit):
            mu = expit(eta)
            w = self.m * mu * (1 - mu)
            L = self.re.cholesky(self._A(lam, w))
            grad = self._lam_t(lam, self.re.zt_times(self.m * (self.y - mu))) - u
            delta = L.solve(grad)
            if np.max(np.abs(delta)) < tol:
                break
            step = 1.0
            while True:
                u_new = u + step * delta
                eta_new = self._eta(lam, u_new, offset)
                pdev_new = -2 * self.loglik_y(eta_new) + u_new @ u_new
                if pdev_new <= pdev + 1e-12 * abs(pdev) or step < 1e-8:
                    break
                step /= 2
            u, eta, pdev = u_new, eta_new, pdev_new
        return float(pdev + L.logdet), u, L

    def laplace(self, par: np.ndarray) -> float:
        nt = self.re.ntheta
        try:
            dev, u, _ = self.pirls_u(par[:nt], par[nt:])
        except (linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        self.u = u  # warm start for the next evaluation
        return dev

    # ---- PIRLS on (u, beta) jointly (nAGQ = 0 stage) -----------------------------------
    def pirls_joint(self, theta: np.ndarray, beta0: np.ndarray, tol: float = 1e-9,
                    maxit: int = 60) -> tuple[float, np.ndarray, np.ndarray]:
        lam = self._lam(theta)
        u, beta = self.u.copy(), beta0.copy()
        eta = self._eta(lam, u, self.X @ beta)
        pdev = -2 * self.loglik_y(eta) + u @ u
        for _ in range(maxit):
            mu = expit(eta)
            w = self.m * mu * (1 - mu)
            r = self.m * (self.y - mu)
            L = self.re.cholesky(self._A(lam, w))
            LtZtWX = self._lam_t(lam, self.re.zt_times(w[:, None] * self.X))
            RZX = L.solve_L(LtZtWX)
            RX = linalg.cholesky(self.X.T @ (w[:, None] * self.X) - RZX.T @ RZX, lower=True, check_finite=False)
            gu = self._lam_t(lam, self.re.zt_times(r)) - u
            gb = self.X.T @ r
            cu = L.solve_L(gu)
            cb = linalg.solve_triangular(RX, gb - RZX.T @ cu, lower=True, check_finite=False)
            db = linalg.solve_triangular(RX.T, cb, lower=False, check_finite=False)
            du = L.solve_Lt(cu - RZX @ db)
            if max(np.max(np.abs(du)), np.max(np.abs(db))) < tol:
                break
            step = 1.0
            while True:
                u_new, b_new = u + step * du, beta + step * db
                eta_new = self._eta(lam, u_new, self.X @ b_new)
                pdev_new = -2 * self.loglik_y(eta_new) + u_new @ u_new
                if pdev_new <= pdev + 1e-12 * abs(pdev) or step < 1e-8:
                    break
                step /= 2
            u, beta, eta, pdev = u_new, b_new, eta_new, pdev_new
        self.u = u
        return float(pdev + L.logdet), beta, L


def _check_binomial(md: ModelData) -> None:
    y, m = md.y, md.weights
    if md.formula.binomial_cbind is None:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
            raise DataError(f"the outcome '{md.formula.response}' must be 0 or 1 (bad rows: {rows}); "
                            "for counts use cbind(successes, failures)")
    else:
        k = y * m
        if np.any(np.abs(k - np.round(k)) > 1e-8) or np.any(np.abs(m - np.round(m)) > 1e-8):
            raise DataError("cbind() counts must be whole numbers")
    if np.all(y == y[0]) and md.formula.binomial_cbind is None:
        raise DataError("the outcome has no variation (all 0 or all 1); a logistic model cannot be fitted")


def fit_glmm(
    data: pd.DataFrame,
    formula: str,
    reference: Mapping[str, object] | None = None,
    se: str = "hessian",
) -> MixedModelResult:
    """Fit a logistic mixed model by maximum likelihood with the Laplace approximation.

    Parameters
    ----------
    data : DataFrame
        Rows with missing values in the formula's columns are dropped (noted in warnings).
    formula : str
        lme4-style, e.g. ``"correct ~ condition + (1|participant_id) + (1|family)"`` or
        ``"cbind(incidence, size - incidence) ~ period + (1|herd)"``. Random terms:
        intercepts, numeric slopes, correlated ``(1 + x|g)`` or uncorrelated ``(1 + x||g)``.
    reference : mapping, optional
        Reference level per factor (treatment coding), e.g. ``{"condition": "none"}``.
    se : {"hessian", "rx"}, default "hessian"
        ``"hessian"``: from the numerically differentiated Hessian of the Laplace deviance
        in (theta, beta), as lme4's default ``use.hessian = TRUE`` but with central
        differences; ``"rx"``: conditional on theta (MixedModels.jl style, cheaper).

    Returns
    -------
    MixedModelResult
    """
    if se not in {"hessian", "rx"}:
        raise ValueError("se must be 'hessian' or 'rx'")
    t0 = time.perf_counter()
    md = prepare(data, formula, reference)
    _check_binomial(md)
    with blas_threads(1):
        res = _fit(md, se)
    if res.singular:
        res.warnings.append("singular fit: a random-effects variance is estimated at (or near) zero")
    res.fit_seconds = time.perf_counter() - t0
    return res


def _fit(md: ModelData, se: str) -> MixedModelResult:
    prob = _GlmmProblem(md)
    nt, p = md.re.ntheta, md.X.shape[1]
    lower_t = md.re.theta_lower()
    # GLM start for beta (theta = 0), then stage 1: theta with beta at the joint mode.
    _, beta0, _ = prob.pirls_joint(np.zeros(nt), np.zeros(p))
    state = {"beta": beta0}

    def dev_stage1(theta: np.ndarray) -> float:
        try:
            d, b, _ = prob.pirls_joint(theta, state["beta"])
        except (linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        state["beta"] = b
        return d

    prob.u = np.zeros(md.re.q)
    opt1 = minimize_bounded(dev_stage1, md.re.theta_init(), lower_t, polish=False, ftol=1e-10)
    _, beta1, _ = prob.pirls_joint(opt1.x, state["beta"])
    # Stage 2: Laplace deviance over (theta, beta), from the stage-1 answer.
    lower = np.concatenate([lower_t, np.full(p, -np.inf)])
    x1 = np.concatenate([opt1.x, beta1])
    on_boundary = np.any((lower_t == 0) & (opt1.x < 1e-3))
    newton = None if on_boundary else newton_fd(prob.laplace, x1, lower)
    if newton is not None:
        opt, H = newton
    else:
        opt, H = minimize_bounded(prob.laplace, x1, lower), None
    par = opt.x
    theta, beta = par[:nt], par[nt:]
    dev, u, L = prob.pirls_u(theta, beta, tol=1e-12)
    warnings: list[str] = []
    if md.n_dropped:
        warnings.append(f"{md.n_dropped} row(s) with missing values were dropped")
    if not opt.converged:
        warnings.append(f"convergence: {opt.message}")
    lam = md.re.lambda_matrix(theta)
    singular = any(np.any(np.abs(np.diag(T)) < 1e-4) for T in md.re.factors(theta))
    vcov, se_method = _vcov(prob, theta, beta, se, singular, warnings, H)
    b = lam * u if lam.ndim == 1 else lam @ u
    return MixedModelResult(
        family="binomial", method="Laplace", formula=md.formula.text, terms=list(md.design.columns),
        beta=beta, vcov_beta=vcov, theta=theta, sigma=1.0,
        loglik=float(-0.5 * dev + prob.log_choose), nobs=len(md.y), n_params=p + nt,
        converged=opt.converged, warnings=warnings, se_method=se_method, ranef_modes=b, model_data=md,
    )


def _vcov_rx(prob: _GlmmProblem, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Inverse of the Schur complement ``RX'RX`` at the mode (theta fixed)."""
    _, u, L = prob.pirls_u(theta, beta, tol=1e-12)
    lam = prob._lam(theta)
    eta = prob._eta(lam, u, prob.X @ beta)
    mu = expit(eta)
    w = prob.m * mu * (1 - mu)
    RZX = L.solve_L(prob._lam_t(lam, prob.re.zt_times(w[:, None] * prob.X)))
    S = prob.X.T @ (w[:, None] * prob.X) - RZX.T @ RZX
    return np.linalg.inv(S)


def _vcov(prob: _GlmmProblem, theta: np.ndarray, beta: np.ndarray, se: str, singular: bool,
          warnings: list[str], H: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    nt = len(theta)
    if se == "rx":
        return _vcov_rx(prob, theta, beta), "RX (conditional on theta)"
    if H is not None and not singular:  # Newton's last Hessian, taken at the optimum
        return np.linalg.inv(0.5 * H)[nt:, nt:], "Hessian of the Laplace deviance in (theta, beta)"
    par = np.concatenate([theta, beta])
    u_star = prob.u.copy()

    def f(x: np.ndarray) -> float:
        d, _, _ = prob.pirls_u(x[:nt], x[nt:], u0=u_star, tol=1e-12)
        return d

    if singular:
        # theta sits on its boundary: differentiate in beta only (theta held fixed).
        H = numeric_hessian(lambda b: f(np.concatenate([theta, b])), beta)
        label = "Hessian in beta (theta fixed: singular fit)"
        try:
            return np.linalg.inv(0.5 * H), label
        except np.linalg.LinAlgError:
            pass
    else:
        H = numeric_hessian(f, par)
        try:
            C = np.linalg.inv(0.5 * H)
            if np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0):
                return C[nt:, nt:], "Hessian of the Laplace deviance in (theta, beta)"
        except np.linalg.LinAlgError:
            pass
    warnings.append("Hessian not positive definite; standard errors are conditional on theta (RX)")
    return _vcov_rx(prob, theta, beta), "RX (conditional on theta)"
