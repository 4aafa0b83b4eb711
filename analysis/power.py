"""Power by simulation: draw data from the model, refit it, count rejections."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .contrasts import DEFAULT_FORMULA, baseline_pairs, compare_to_baselines
from .glmm import fit_glmm
from .load import DataError, wilson_ci
from .simulate import simulate_trials

__all__ = ["simulate_power", "POWER_COLUMNS"]

POWER_COLUMNS = ["n_participants", "method", "baseline", "power", "ci_low", "ci_high", "n_sims", "n_failed"]


def _one(job: tuple) -> list[tuple[str, str, float]] | None:
    (accuracy, pairs, n_part, n_items, trials, p_sd, i_sd, formula, se, seq) = job
    data = simulate_trials(accuracy, n_participants=n_part, n_items=n_items, trials_per_participant=trials,
                           participant_sd=p_sd, item_sd=i_sd, seed=np.random.default_rng(seq))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_glmm(data, formula, se=se)
            plan = {}
            for m, b in pairs:
                plan.setdefault(m, []).append(b)
            cmp = compare_to_baselines(fit, plan=plan)
    except Exception:  # a failed refit counts as a failure, reported in n_failed
        return None
    if not fit.converged:
        return None
    return [(r.method, r.baseline, float(r.p_holm)) for r in cmp.contrasts.itertuples()]


def simulate_power(
    accuracy: Mapping[str, float],
    baselines: Mapping[str, Sequence[str]],
    n_participants: int | Sequence[int] = (20, 40, 60),
    n_items: int = 40,
    trials_per_participant: int = 60,
    participant_sd: float = 0.5,
    item_sd: float = 0.3,
    n_sims: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    n_jobs: int = 2,
    formula: str = DEFAULT_FORMULA,
    se: str = "hessian",
    progress: bool = True,
) -> pd.DataFrame:
    """Power to detect each method-baseline contrast, over numbers of participants.

    Each simulated data set is drawn by :func:`analysis.simulate_trials` (a logistic GLMM
    with crossed participant and item intercepts), refitted with ``formula``, and the
    contrasts are tested as in :func:`analysis.compare_to_baselines` (Holm-adjusted,
    level ``alpha``). Seeds come from ``numpy.random.SeedSequence(seed).spawn``, one per
    data set in a fixed order, so results do not depend on ``n_jobs``.

    Parameters
    ----------
    accuracy : mapping
        Condition -> accuracy of a typical participant on a typical item.
    baselines : mapping
        ``{method: [baselines]}``.
    n_participants : int or sequence of int
        One point of the power curve per value.
    n_items, trials_per_participant : int
        Items per condition and main trials per participant.
    participant_sd, item_sd : float
        Random-intercept SDs (logit scale).
    n_sims : int
        Data sets per point.
    alpha : float
    seed : int
    n_jobs : int, default 2
        Worker processes (1 runs in this process).
    formula : str
    se : {"hessian", "rx"}
        Passed to :func:`analysis.fit_glmm`.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    DataFrame
        ``n_participants, method, baseline, power, ci_low, ci_high, n_sims, n_failed``
        (Wilson 95% interval for the simulated power; failed refits are left out).
    """
    pairs = baseline_pairs(plan=baselines)
    missing = sorted({c for pr in pairs for c in pr} - set(accuracy))
    if missing:
        raise DataError(f"no accuracy given for condition(s): {', '.join(missing)}")
    ns = [int(n_participants)] if np.isscalar(n_participants) else [int(n) for n in n_participants]
    if any(n < 2 for n in ns):
        raise DataError("n_participants must be at least 2")
    seqs = np.random.SeedSequence(seed).spawn(len(ns) * n_sims)
    jobs = [(dict(accuracy), pairs, n, n_items, trials_per_participant, participant_sd, item_sd, formula, se,
             seqs[i * n_sims + s]) for i, n in enumerate(ns) for s in range(n_sims)]
    results: list[list | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="power simulations", disable=not progress)
    if n_jobs <= 1:
        for k, job in enumerate(jobs):
            results[k] = _one(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(_one, job): k for k, job in enumerate(jobs)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    rows = []
    for i, n in enumerate(ns):
        chunk = results[i * n_sims : (i + 1) * n_sims]
        ok = [c for c in chunk if c is not None]
        for m, b in pairs:
            hits = sum(1 for c in ok for (mm, bb, p) in c if mm == m and bb == b and p < alpha)
            n_ok = len(ok)
            lo, hi = wilson_ci(np.array(hits), np.array(max(n_ok, 1)))
            rows.append({"n_participants": n, "method": m, "baseline": b,
                         "power": hits / n_ok if n_ok else np.nan, "ci_low": float(lo) if n_ok else np.nan,
                         "ci_high": float(hi) if n_ok else np.nan, "n_sims": n_ok, "n_failed": n_sims - n_ok})
    return pd.DataFrame(rows, columns=POWER_COLUMNS)

