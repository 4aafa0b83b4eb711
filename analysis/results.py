"""Fit results: tidy tables, fit statistics, a printable summary and predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .prepare import ModelData

__all__ = ["MixedModelResult", "FIXED_COLUMNS", "RANDOM_COLUMNS"]

FIXED_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high", "odds_ratio"]
RANDOM_COLUMNS = ["group", "term", "sd", "variance"]


@dataclass
class MixedModelResult:
    """A fitted mixed model (from :func:`analysis.fit_glmm` or :func:`analysis.fit_lmm`).

    Attributes
    ----------
    fixed : DataFrame
        ``term, estimate, std_error, statistic, p_value, ci_low, ci_high`` (Wald, normal
        reference distribution) and ``odds_ratio`` (``exp(estimate)``; NaN for linear models).
    random : DataFrame
        ``group, term, sd, variance``; linear models add a ``Residual`` row.
    random_corr : DataFrame
        ``group, term1, term2, corr`` for correlated random-effects terms.
    loglik, aic, bic, deviance : float
        For REML fits ``loglik`` is minus half the REML criterion (as lme4's ``logLik``).
    converged : bool
    warnings : list of str
        Singular fits, convergence trouble, dropped rows.
    """

    family: str
    method: str
    formula: str
    terms: list[str]
    beta: np.ndarray
    vcov_beta: np.ndarray
    theta: np.ndarray
    sigma: float
    loglik: float
    nobs: int
    n_params: int
    converged: bool
    warnings: list[str]
    se_method: str
    ranef_modes: np.ndarray  # b = Lambda u on the original scale
    model_data: ModelData = field(repr=False)
    criterion: float = float("nan")  # REML criterion when method == "REML"
    fit_seconds: float = float("nan")

    # --- tables ---------------------------------------------------------------------------
    @property
    def fixed(self) -> pd.DataFrame:
        """Tidy fixed-effects table (95% Wald intervals)."""
        return self.fixed_table(0.05)

    def fixed_table(self, alpha: float = 0.05) -> pd.DataFrame:
        """Fixed-effects table with ``1 - alpha`` Wald intervals."""
        se = np.sqrt(np.diag(self.vcov_beta))
        z = self.beta / se
        crit = stats.norm.ppf(1 - alpha / 2)
        df = pd.DataFrame({
            "term": self.terms,
            "estimate": self.beta,
            "std_error": se,
            "statistic": z,
            "p_value": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": self.beta - crit * se,
            "ci_high": self.beta + crit * se,
            "odds_ratio": np.exp(self.beta) if self.family == "binomial" else np.nan,
        })
        return df[FIXED_COLUMNS]

    def _covariances(self) -> list[tuple[str, list[str], np.ndarray]]:
        re = self.model_data.re
        out = []
        for blk, T in zip(re.blocks, re.factors(self.theta)):
            out.append((blk.term.group, list(blk.term.columns), self.sigma**2 * T @ T.T))
        return out

    @property
    def random(self) -> pd.DataFrame:
        """Random-effects SDs and variances (``group, term, sd, variance``)."""
        rows = []
        for g, cols, S in self._covariances():
            for i, c in enumerate(cols):
                rows.append({"group": g, "term": c, "sd": float(np.sqrt(S[i, i])), "variance": float(S[i, i])})
        if self.family == "gaussian":
            rows.append({"group": "Residual", "term": "", "sd": self.sigma, "variance": self.sigma**2})
        return pd.DataFrame(rows, columns=RANDOM_COLUMNS)

    @property
    def random_corr(self) -> pd.DataFrame:
        """Correlations within correlated random-effects terms (``group, term1, term2, corr``)."""
        rows = []
        for g, cols, S in self._covariances():
            sd = np.sqrt(np.diag(S))
            for i in range(len(cols)):
                for j in range(i + 1, len(cols)):
                    c = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append({"group": g, "term1": cols[i], "term2": cols[j], "corr": float(c)})
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "corr"])

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects, labelled by term."""
        return pd.DataFrame(self.vcov_beta, index=self.terms, columns=self.terms)

    @property
    def deviance(self) -> float:
        """Minus twice the log-likelihood."""
        return -2.0 * self.loglik

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.n_params

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor."""
        return {b.term.group: b.nlev for b in self.model_data.re.blocks}

    @property
    def singular(self) -> bool:
        """True when a random-effects covariance is (near) singular (lme4's isSingular, tol 1e-4)."""
        for T in self.model_data.re.factors(self.theta):
            if np.any(np.abs(np.diag(T)) < 1e-4):
                return True
        return False

    def ranef(self) -> pd.DataFrame:
        """Conditional modes of the random effects: ``group, level, term, value``."""
        rows = []
        for blk in self.model_data.re.blocks:
            B = self.ranef_modes[blk.offset : blk.offset + blk.q].reshape(blk.nlev, blk.p)
            for a, c in enumerate(blk.term.columns):
                rows.append(pd.DataFrame({"group": blk.term.group, "level": blk.levels, "term": c, "value": B[:, a]}))
        return pd.concat(rows, ignore_index=True)

    # --- prediction and contrasts ---------------------------------------------------------
    def model_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """Fixed-effects design rows for ``newdata`` (factor levels as in the fit)."""
        return self.model_data.design.matrix(newdata)

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "response") -> np.ndarray:
        """Population-level prediction (random effects at zero).

        ``type="link"`` gives the linear predictor; ``"response"`` the mean (probability
        for binomial models). For averages over the random effects see
        :func:`analysis.marginal_accuracy`.
        """
        X = self.model_data.X if newdata is None else self.model_matrix(newdata)
        eta = X @ self.beta
        if type == "link" or self.family == "gaussian":
            return eta
        if type != "response":
            raise ValueError("type must be 'link' or 'response'")
        return 1.0 / (1.0 + np.exp(-eta))

    def contrast(self, L: np.ndarray, names: list[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
        """Wald tests of linear combinations ``L @ beta`` (rows of ``L``).

        Returns ``contrast, estimate, std_error, statistic, p_value, ci_low, ci_high``.
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        est = L @ self.beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", L, self.vcov_beta, L))
        z = est / se
        crit = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame({
            "contrast": names or [f"c{i}" for i in range(len(est))],
            "estimate": est, "std_error": se, "statistic": z,
            "p_value": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": est - crit * se, "ci_high": est + crit * se,
        })

    # --- text -----------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable summary in the spirit of lme4's ``print(summary(fit))``."""
        kind = {"binomial": "Generalized linear mixed model (binomial, logit link)",
                "gaussian": "Linear mixed model"}[self.family]
        fit_by = {"Laplace": "maximum likelihood (Laplace approximation)",
                  "ML": "maximum likelihood", "REML": "REML"}[self.method]
        lines = [f"{kind} fit by {fit_by}", f"Formula: {self.formula}", ""]
        if self.method == "REML":
            lines.append(f"REML criterion at convergence: {self.criterion:.4f}")
        lines.append("     AIC       BIC    logLik  deviance")
        lines.append(f"{self.aic:9.2f} {self.bic:9.2f} {self.loglik:9.3f} {self.deviance:9.2f}")
        lines += ["", "Random effects:"]
        rnd = self.random
        lines.append(f"  {'Group':<20} {'Term':<16} {'Variance':>10} {'Std.Dev.':>10}")
        for r in rnd.itertuples():
            lines.append(f"  {r.group:<20} {r.term:<16} {r.variance:10.4f} {r.sd:10.4f}")
        corr = self.random_corr
        for r in corr.itertuples():
            lines.append(f"  corr({r.group}: {r.term1}, {r.term2}) = {r.corr:.3f}")
        groups = ", ".join(f"{g}, {n}" for g, n in self.ngroups.items())
        lines.append(f"Number of obs: {self.nobs}, groups: {groups}")
        lines += ["", f"Fixed effects (Wald z; standard errors: {self.se_method}):"]
        fx = self.fixed
        w = max(12, max(len(t) for t in fx["term"]))
        lines.append(f"  {'':<{w}} {'Estimate':>10} {'Std.Err':>9} {'z':>8} {'p':>10}" +
                     (f" {'OR':>8}" if self.family == "binomial" else ""))
        for r in fx.itertuples():
            p = f"{r.p_value:10.3g}" if r.p_value >= 1e-16 else f"{'<1e-16':>10}"
            line = f"  {r.term:<{w}} {r.estimate:10.4f} {r.std_error:9.4f} {r.statistic:8.3f} {p}"
            if self.family == "binomial":
                line += f" {r.odds_ratio:8.3f}"
            lines.append(line)
        lines.append("")
        lines.append("Converged: " + ("yes" if self.converged else "NO"))
        for w_ in self.warnings:
            lines.append(f"Warning: {w_}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
