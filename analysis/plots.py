"""Report figures (matplotlib, Agg backend, deterministic)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_accuracy", "plot_rt", "plot_power"]

_META = {"Software": None}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)
    return path


def plot_accuracy(
    accuracy: pd.DataFrame, trials: pd.DataFrame, path: Path, seed: int = 0
) -> Path:
    """Accuracy per condition: model-based and Wilson CIs, with one point per participant."""
    conds = list(accuracy["condition"])
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(conds), 4.0))
    per = trials.groupby(["condition", "participant_id"])["correct"].mean().reset_index()
    for i, c in enumerate(conds):
        pts = per.loc[per["condition"] == c, "correct"].to_numpy(dtype=float)
        ax.scatter(i - 0.18 + rng.uniform(-0.08, 0.08, len(pts)), pts, s=9, color="0.6", alpha=0.6,
                   label="participants" if i == 0 else None, zorder=1)
    x = np.arange(len(conds))
    if {"wilson_low", "raw_accuracy"} <= set(accuracy.columns):
        ax.errorbar(x + 0.05, accuracy["raw_accuracy"],
                    yerr=[accuracy["raw_accuracy"] - accuracy["wilson_low"], accuracy["wilson_high"] - accuracy["raw_accuracy"]],
                    fmt="s", color="tab:orange", capsize=4, label="raw (Wilson 95% CI)", zorder=3)
    if "ci_low" in accuracy.columns and "accuracy" in accuracy.columns:
        ax.errorbar(x + 0.2, accuracy["accuracy"],
                    yerr=[accuracy["accuracy"] - accuracy["ci_low"], accuracy["ci_high"] - accuracy["accuracy"]],
                    fmt="o", color="tab:blue", capsize=4, label="model (95% CI)", zorder=3)
    ax.axhline(0.5, color="0.3", lw=0.8, ls=":")
    ax.set_xticks(x, conds, rotation=20 if len(conds) > 4 else 0)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_rt(trials: pd.DataFrame, path: Path) -> Path:
    """Reaction-time distributions per condition (log-spaced histogram)."""
    rt = trials[trials["rt_ms"] > 0]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    if len(rt):
        lo, hi = np.log10(rt["rt_ms"].min()), np.log10(rt["rt_ms"].max())
        bins = np.logspace(lo, hi if hi > lo else lo + 1, 40)
        for c, sub in rt.groupby("condition", sort=True):
            ax.hist(sub["rt_ms"], bins=bins, histtype="step", lw=1.4, label=str(c), density=True)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("reaction time (ms, log scale)")
    ax.set_ylabel("density")
    return _save(fig, path)


def plot_power(power: pd.DataFrame, path: Path, alpha_line: float = 0.8) -> Path:
    """Power curve: power per contrast over the number of participants."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for (m, b), sub in power.groupby(["method", "baseline"], sort=True):
        sub = sub.sort_values("n_participants")
        ax.errorbar(sub["n_participants"], sub["power"],
                    yerr=[sub["power"] - sub["ci_low"], sub["ci_high"] - sub["power"]],
                    marker="o", capsize=3, label=f"{m} vs {b}")
    ax.axhline(alpha_line, color="0.3", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("participants")
    ax.set_ylabel("power (Holm-adjusted)")
    ax.legend(fontsize=8)
    return _save(fig, path)
