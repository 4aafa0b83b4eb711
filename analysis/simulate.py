"""Simulated exports: trial tables drawn from a logistic mixed model with known truth."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .load import EXPORT_COLUMNS

__all__ = ["simulate_trials"]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def simulate_trials(
    accuracy: Mapping[str, float],
    n_participants: int = 60,
    n_items: int = 40,
    trials_per_participant: int = 80,
    participant_sd: float = 0.5,
    item_sd: float = 0.3,
    n_catch: int = 0,
    rt_log_mean: float = 7.0,
    rt_log_sd: float = 0.4,
    seed: int | np.random.SeedSequence | np.random.Generator | None = 0,
    experiment: str = "simulated",
) -> pd.DataFrame:
    """Draw a within-subject 2AFC export from a logistic GLMM with crossed intercepts.

    Each condition gets ``n_items`` items; its items are nested in families (one family per
    item here, so ``family`` is the item random effect). Participant ``j`` answers
    ``trials_per_participant`` main trials spread evenly over conditions, sampling items
    without replacement where possible. ``accuracy`` gives the accuracy of a typical
    participant on a typical item (random effects at zero), i.e. the conditional mean.

    Parameters
    ----------
    accuracy : mapping
        Condition name -> accuracy for the average participant and item, in (0, 1).
    n_participants, n_items, trials_per_participant : int
        Design sizes (``n_items`` per condition).
    participant_sd, item_sd : float
        Random-intercept SDs on the logit scale.
    n_catch : int
        Easy catch trials per participant (accuracy 0.97).
    rt_log_mean, rt_log_sd : float
        Log-normal reaction times (ms).
    seed : int, SeedSequence, Generator or None
        Source of randomness (``numpy.random.default_rng(seed)``).
    experiment : str
        Value of the ``experiment`` column.

    Returns
    -------
    DataFrame
        The export columns (DESIGN.md, "Export").
    """
    conds = list(accuracy)
    if not conds:
        raise ValueError("accuracy must name at least one condition")
    p = np.array([accuracy[c] for c in conds], dtype=float)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("accuracies must lie strictly between 0 and 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    base = _logit(p)
    k = len(conds)
    u_part = rng.normal(0.0, participant_sd, n_participants)
    u_item = rng.normal(0.0, item_sd, (k, n_items))
    per_cond = np.full(k, trials_per_participant // k)
    per_cond[: trials_per_participant % k] += 1

    rows_c, rows_i, rows_p = [], [], []
    for j in range(n_participants):
        cs, its = [], []
        for ci in range(k):
            m = int(per_cond[ci])
            reps = int(np.ceil(m / n_items)) if n_items else 0
            pool = np.concatenate([rng.permutation(n_items) for _ in range(max(reps, 1))])[:m]
            cs.append(np.full(m, ci))
            its.append(pool)
        c = np.concatenate(cs)
        it = np.concatenate(its)
        order = rng.permutation(len(c))
        rows_c.append(c[order])
        rows_i.append(it[order])
        rows_p.append(np.full(len(c), j))
    c = np.concatenate(rows_c)
    it = np.concatenate(rows_i)
    pj = np.concatenate(rows_p)
    eta = base[c] + u_part[pj] + u_item[c, it]
    y = (rng.random(len(eta)) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    n = len(y)
    position = np.concatenate([np.arange((pj == j).sum()) for j in range(n_participants)])
    main = pd.DataFrame(
        {
            "participant_id": [f"p{j:04d}" for j in pj],
            "position": position,
            "kind": "main",
            "item_id": [f"{conds[a]}/{b:03d}" for a, b in zip(c, it)],
            "condition": [conds[a] for a in c],
            "family": [f"f{a:02d}_{b:03d}" for a, b in zip(c, it)],
            "correct": y,
        }
    )
    parts = [main]
    if n_catch > 0:
        pj_c = np.repeat(np.arange(n_participants), n_catch)
        yc = (rng.random(len(pj_c)) < 0.97).astype(int)
        parts.append(
            pd.DataFrame(
                {
                    "participant_id": [f"p{j:04d}" for j in pj_c],
                    "position": np.tile(np.arange(n_catch), n_participants) + 100000,
                    "kind": "catch",
                    "item_id": [f"catch/{i:02d}" for i in np.tile(np.arange(n_catch), n_participants)],
                    "condition": "catch",
                    "family": "catch",
                    "correct": yc,
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    n = len(df)
    side = rng.integers(0, 2, n)
    df["correct_side"] = side
    df["chosen_side"] = np.where(df["correct"] == 1, side, 1 - side)
    df["rt_ms"] = np.round(np.exp(rng.normal(rt_log_mean, rt_log_sd, n)), 1)
    df["experiment"] = experiment
    df["experiment_version"] = 1
    df["external_id"] = df["participant_id"].str.replace("p", "ext", regex=False)
    df["between_condition"] = None
    df["block"] = 0
    df["task"] = "unit_prediction"
    t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    df["shown_at"] = t0 + pd.to_timedelta(df["position"] * 5, unit="s")
    df["answered_at"] = df["shown_at"] + pd.to_timedelta(df["rt_ms"], unit="ms")
    df["excluded"] = 0
    df["exclusion_reason"] = None
    df = df.sort_values(["participant_id", "position"], kind="stable").reset_index(drop=True)
    df["position"] = df.groupby("participant_id").cumcount()
    return df[list(EXPORT_COLUMNS)]
