"""Every method against each of its declared baselines, and accuracy per condition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .glmm import fit_glmm
from .load import EXPORT_COLUMNS, DataError, accuracy_by_condition, validate_trials
from .results import MixedModelResult

__all__ = [
    "DEFAULT_FORMULA",
    "BaselineComparison",
    "baseline_pairs",
    "compare_to_baselines",
    "marginal_accuracy",
]

DEFAULT_FORMULA = "correct ~ condition + (1|participant_id) + (1|family)"
CONTRAST_COLUMNS = [
    "method", "baseline", "log_odds", "std_error", "statistic", "p_value", "p_holm",
    "odds_ratio", "or_ci_low", "or_ci_high", "acc_method", "acc_baseline",
    "acc_diff", "acc_diff_ci_low", "acc_diff_ci_high", "significant",
]
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(32)


def baseline_pairs(
    conditions: Sequence[Mapping[str, object]] | None = None,
    plan: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, str]]:
    """(method, baseline) pairs from manifest-style conditions or a ``{method: [baselines]}`` plan."""
    if plan is not None:
        pairs = []
        for m, bs in plan.items():
            if isinstance(bs, str):
                bs = [bs]
            pairs += [(str(m), str(b)) for b in bs]
    elif conditions is not None:
        pairs = []
        for c in conditions:
            if not isinstance(c, Mapping) or "name" not in c:
                raise DataError(f"each condition needs a 'name' (got {c!r})")
            if c.get("role", "method") == "method":
                pairs += [(str(c["name"]), str(b)) for b in (c.get("baselines") or [])]
    else:
        raise DataError("no baselines declared: give conditions (manifest) or a plan {method: [baselines]}")
    if not pairs:
        raise DataError("no method declares a baseline to compare with")
    for m, b in pairs:
        if m == b:
            raise DataError(f"condition '{m}' is declared as its own baseline")
    return list(dict.fromkeys(pairs))


def _grid(fit: MixedModelResult, col: str, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Design rows with ``col`` set to ``level`` for every fitted row, and the RE variance per row."""
    md = fit.model_data
    d = md.data.copy()
    d[col] = level
    X = md.design.matrix(d)
    var = np.zeros(len(d))
    for blk, T in zip(md.re.blocks, md.re.factors(fit.theta)):
        S = fit.sigma**2 * T @ T.T
        var += np.einsum("ij,jk,ik->i", blk.Z, S, blk.Z)
    # collapse duplicates: the average only needs distinct (row, variance) pairs
    key = np.column_stack([X, var])
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    return uniq, counts


def _marginal_p(fit: MixedModelResult, col: str, level: str) -> tuple[float, np.ndarray]:
    """Population-averaged probability and its gradient in beta (Gauss-Hermite over the REs)."""
    uniq, counts = _grid(fit, col, level)
    X, var = uniq[:, :-1], uniq[:, -1]
    w = counts / counts.sum()
    eta = X @ fit.beta
    nodes = eta[:, None] + np.sqrt(2 * var)[:, None] * _GH_X[None, :]
    p = 1.0 / (1.0 + np.exp(-nodes))
    gw = _GH_W / np.sqrt(np.pi)
    prob = float(w @ (p @ gw))
    dp = (p * (1 - p)) @ gw  # d prob_i / d eta_i
    return prob, (w * dp) @ X


def _levels(fit: MixedModelResult, col: str) -> list[str]:
    lv = fit.model_data.design.levels.get(col)
    if lv is None:
        raise DataError(f"'{col}' is not a factor in the model's fixed effects ({fit.formula})")
    return list(lv)


def marginal_accuracy(fit: MixedModelResult, condition_col: str = "condition", alpha: float = 0.05) -> pd.DataFrame:
    """Model-based accuracy per condition, averaged over participants and items.

    The population-averaged probability integrates the logistic curve over the random
    effects (Gauss-Hermite, 32 nodes) for every fitted row with the condition set to each
    level in turn. Intervals come from the delta method on the logit of that probability
    (theta held at its estimate).

    Returns
    -------
    DataFrame
        ``condition, accuracy, std_error, ci_low, ci_high, accuracy_typical`` where
        ``accuracy_typical`` sets the random effects to zero (a typical participant and item).
    """
    if fit.family != "binomial":
        raise DataError("marginal accuracy needs a logistic (binomial) model")
    crit = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for lev in _levels(fit, condition_col):
        p, g = _marginal_p(fit, condition_col, lev)
        se_p = float(np.sqrt(g @ fit.vcov_beta @ g))
        logit = np.log(p / (1 - p))
        se_l = se_p / (p * (1 - p))
        d = fit.model_data.data.copy()
        d[condition_col] = lev
        typical = float(np.mean(fit.predict(d)))
        rows.append({"condition": lev, "accuracy": p, "std_error": se_p,
                     "ci_low": float(1 / (1 + np.exp(-(logit - crit * se_l)))),
                     "ci_high": float(1 / (1 + np.exp(-(logit + crit * se_l)))),
                     "accuracy_typical": typical})
    return pd.DataFrame(rows, columns=["condition", "accuracy", "std_error", "ci_low", "ci_high", "accuracy_typical"])


@dataclass
class BaselineComparison:
    """Result of :func:`compare_to_baselines`.

    Attributes
    ----------
    contrasts : DataFrame
        One row per (method, baseline): log-odds difference with Wald z test, raw and
        Holm-adjusted p-values, odds ratio with its (unadjusted) CI, and the difference in
        population-averaged accuracy with a delta-method CI.
    accuracy : DataFrame
        Per condition: model-based accuracy and CI beside the raw accuracy with Wilson CI.
    fit : MixedModelResult
    """

    contrasts: pd.DataFrame
    accuracy: pd.DataFrame
    fit: MixedModelResult


def compare_to_baselines(
    data_or_fit: pd.DataFrame | MixedModelResult,
    conditions: Sequence[Mapping[str, object]] | None = None,
    plan: Mapping[str, Sequence[str]] | None = None,
    formula: str = DEFAULT_FORMULA,
    condition_col: str = "condition",
    reference: Mapping[str, object] | None = None,
    alpha: float = 0.05,
) -> BaselineComparison:
    """Contrast every method with each of its declared baselines (Holm-corrected).

    Parameters
    ----------
    data_or_fit : DataFrame or MixedModelResult
        A trial table (main, non-excluded trials are used when it has the export
        columns) or a logistic fit with ``condition_col`` as a fixed factor.
    conditions : list of dict, optional
        Manifest-style ``[{"name": ..., "role": "method", "baselines": [...]}, ...]``.
    plan : dict, optional
        ``{method: [baselines]}`` (takes precedence over ``conditions``).
    formula : str, default ``DEFAULT_FORMULA``
        Used when data are given.
    condition_col : str, default "condition"
    reference : mapping, optional
        Reference levels for the fit (do not change the contrasts, only the coefficients).
    alpha : float, default 0.05
        Level of the intervals and of ``significant`` (on Holm-adjusted p-values).

    Returns
    -------
    BaselineComparison
    """
    pairs = baseline_pairs(conditions, plan)
    raw = None
    if isinstance(data_or_fit, MixedModelResult):
        fit = data_or_fit
    else:
        data = data_or_fit
        if all(c in data.columns for c in EXPORT_COLUMNS):
            data = validate_trials(data)
            data = data[(data["kind"] == "main") & (data["excluded"] == 0)]
            raw = accuracy_by_condition(data, kind="main")
        named = {c for pr in pairs for c in pr}
        present = set(data[condition_col].dropna().astype(str)) if condition_col in data else set()
        absent = sorted(named - present)
        if absent:
            raise DataError(f"condition(s) without data: {', '.join(absent)}")
        data = data[data[condition_col].astype(str).isin(named)]
        fit = fit_glmm(data, formula, reference=reference)
    if fit.family != "binomial":
        raise DataError("baseline comparisons need a logistic (binomial) model")
    levels = _levels(fit, condition_col)
    absent = sorted({c for pr in pairs for c in pr} - set(levels))
    if absent:
        raise DataError(f"condition(s) without data in the fit: {', '.join(absent)}")
    crit = stats.norm.ppf(1 - alpha / 2)
    cache = {lev: _marginal_p(fit, condition_col, lev) for lev in levels}
    rows = []
    for m, b in pairs:
        L = _grid_mean(fit, condition_col, m) - _grid_mean(fit, condition_col, b)
        est = float(L @ fit.beta)
        se = float(np.sqrt(L @ fit.vcov_beta @ L))
        (pm, gm), (pb, gb) = cache[m], cache[b]
        gd = gm - gb
        se_d = float(np.sqrt(gd @ fit.vcov_beta @ gd))
        rows.append({"method": m, "baseline": b, "log_odds": est, "std_error": se,
                     "statistic": est / se, "p_value": float(2 * stats.norm.sf(abs(est / se))),
                     "odds_ratio": float(np.exp(est)), "or_ci_low": float(np.exp(est - crit * se)),
                     "or_ci_high": float(np.exp(est + crit * se)), "acc_method": pm, "acc_baseline": pb,
                     "acc_diff": pm - pb, "acc_diff_ci_low": pm - pb - crit * se_d,
                     "acc_diff_ci_high": pm - pb + crit * se_d})
    out = pd.DataFrame(rows)
    out["p_holm"] = multipletests(out["p_value"].to_numpy(), method="holm")[1]
    out["significant"] = out["p_holm"] < alpha
    acc = marginal_accuracy(fit, condition_col, alpha)
    if raw is None:
        raw = _raw_accuracy(fit, condition_col)
    raw = raw.rename(columns={"accuracy": "raw_accuracy", "ci_low": "wilson_low", "ci_high": "wilson_high",
                              "correct": "n_correct"})
    acc = acc.merge(raw, on="condition", how="left")
    return BaselineComparison(out[CONTRAST_COLUMNS], acc, fit)


def _grid_mean(fit: MixedModelResult, col: str, level: str) -> np.ndarray:
    d = fit.model_data.data.copy()
    d[col] = level
    return fit.model_data.design.matrix(d).mean(axis=0)


def _raw_accuracy(fit: MixedModelResult, col: str) -> pd.DataFrame:
    from .load import wilson_ci

    md = fit.model_data
    k = md.y * md.weights
    g = pd.DataFrame({"condition": md.data[col].astype(str), "k": k, "n": md.weights}).groupby("condition")
    out = g.sum().reset_index()
    out["accuracy"] = out["k"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_ci(out["k"].to_numpy(), out["n"].to_numpy())
    out = out.rename(columns={"k": "correct"})
    out["n"] = out["n"].astype("int64")
    out["correct"] = out["correct"].round().astype("int64")
    return out[["condition", "n", "correct", "accuracy", "ci_low", "ci_high"]]
