"""Exclusions as preregistered, with a table of who was excluded and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .load import validate_trials
from .plan import ExclusionRules

__all__ = ["apply_exclusions", "EXCLUSION_COLUMNS"]

EXCLUSION_COLUMNS = ["participant_id", "rule", "value", "threshold", "reason"]


def _rules(rules: ExclusionRules | Mapping[str, Any] | None) -> ExclusionRules:
    if rules is None:
        return ExclusionRules()
    if isinstance(rules, ExclusionRules):
        return rules
    if "exclusions" in rules:
        rules = rules["exclusions"] or {}
    return ExclusionRules.model_validate(dict(rules))


def apply_exclusions(
    df: pd.DataFrame, rules: ExclusionRules | Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply participant- and trial-level exclusions.

    Participants are excluded when the export marks them (``excluded == 1`` on all their
    rows, reason from ``exclusion_reason``) or when a rule fails: catch accuracy below
    ``catch_min_accuracy``; a fraction of main trials faster than ``min_rt_ms`` above
    ``max_fast_fraction``; the share of answers on one side above ``max_side_bias``;
    unanswered main trials or fewer than ``expected_main_trials`` with ``require_complete``.
    Rows the export marks as excluded are dropped too. With ``drop_fast_trials`` (and
    ``max_rt_ms``) single trials outside the RT window are dropped.

    Parameters
    ----------
    df : DataFrame
        A trial table with the export columns.
    rules : ExclusionRules or mapping, optional
        The rules (or a plan mapping with an ``exclusions`` key).

    Returns
    -------
    kept : DataFrame
        Rows of the participants who stay (all kinds), less excluded rows.
    table : DataFrame
        ``participant_id, rule, value, threshold, reason``: one row per participant and
        failed rule (a participant can fail several), sorted.
    """
    r = _rules(rules)
    data = validate_trials(df)
    rows: list[dict[str, Any]] = []

    def add(pid: str, rule: str, value: float, threshold: float | None, reason: str) -> None:
        rows.append({"participant_id": pid, "rule": rule, "value": value, "threshold": threshold, "reason": reason})

    by_pid = data.groupby("participant_id", sort=True)
    marked = by_pid["excluded"].min()  # all rows marked -> the participant is excluded
    for pid in marked[marked == 1].index:
        why = data.loc[data["participant_id"] == pid, "exclusion_reason"].dropna().astype(str)
        add(pid, "export", 1.0, None, f"excluded by the server: {why.iloc[0]}" if len(why) else "excluded by the server")

    main = data[data["kind"] == "main"]
    answered = main[main["correct"].notna()]
    if r.catch_min_accuracy is not None:
        catch = data[(data["kind"] == "catch") & data["correct"].notna()]
        acc = catch.groupby("participant_id")["correct"].mean()
        for pid, a in acc.items():
            if a < r.catch_min_accuracy:
                add(pid, "catch_min_accuracy", float(a), r.catch_min_accuracy,
                    f"catch accuracy {a:.2f} < {r.catch_min_accuracy:.2f}")
    if r.min_rt_ms is not None and r.max_fast_fraction is not None:
        fast = (answered["rt_ms"] < r.min_rt_ms).groupby(answered["participant_id"]).mean()
        for pid, f in fast.items():
            if f > r.max_fast_fraction:
                add(pid, "max_fast_fraction", float(f), r.max_fast_fraction,
                    f"{f:.0%} of answers faster than {r.min_rt_ms:g} ms (> {r.max_fast_fraction:.0%})")
    if r.max_side_bias is not None:
        side = pd.to_numeric(answered["chosen_side"], errors="coerce")
        share = side.groupby(answered["participant_id"]).mean()
        for pid, s in share.items():
            bias = max(s, 1 - s)
            if np.isfinite(bias) and bias > r.max_side_bias:
                which = "right" if s > 0.5 else "left"
                add(pid, "max_side_bias", float(bias), r.max_side_bias,
                    f"{bias:.0%} of answers on the {which} (> {r.max_side_bias:.0%})")
    if r.require_complete:
        n_main = main.groupby("participant_id").size().reindex(marked.index, fill_value=0)
        n_ans = answered.groupby("participant_id").size().reindex(marked.index, fill_value=0)
        expected = r.expected_main_trials
        for pid in marked.index:
            short = n_ans[pid] < n_main[pid] or (expected is not None and n_ans[pid] < expected)
            if short:
                target = expected if expected is not None else int(n_main[pid])
                add(pid, "require_complete", float(n_ans[pid]), float(target),
                    f"incomplete: {n_ans[pid]} of {target} main trials answered")

    table = pd.DataFrame(rows, columns=EXCLUSION_COLUMNS).sort_values(
        ["participant_id", "rule"], kind="stable").reset_index(drop=True)
    out = data[~data["participant_id"].isin(set(table["participant_id"]))]
    out = out[out["excluded"] == 0]
    if r.drop_fast_trials and r.min_rt_ms is not None:
        out = out[~(out["rt_ms"] < r.min_rt_ms)]
    if r.max_rt_ms is not None:
        out = out[~(out["rt_ms"] > r.max_rt_ms)]
    return out.reset_index(drop=True), table
