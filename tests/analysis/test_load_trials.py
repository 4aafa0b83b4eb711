"""load_trials and accuracy_by_condition: the export contract (DESIGN.md, "Export")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from analysis import EXPORT_COLUMNS, DataError, accuracy_by_condition, load_trials, simulate_trials


@pytest.fixture
def trials() -> pd.DataFrame:
    return simulate_trials({"fv": 0.8, "natural": 0.9, "none": 0.6}, n_participants=8,
                           n_items=10, trials_per_participant=30, n_catch=3, seed=1)


def test_roundtrip_csv_and_parquet(tmp_path, trials):
    csv = tmp_path / "export.csv"
    pq = tmp_path / "export.parquet"
    trials.to_csv(csv, index=False)
    trials.to_parquet(pq, index=False)
    a = load_trials(csv)
    b = load_trials(pq)
    c = load_trials(trials)
    assert list(a.columns[: len(EXPORT_COLUMNS)]) == list(EXPORT_COLUMNS)
    for df in (a, b, c):
        assert len(df) == len(trials)
        assert df["correct"].sum() == trials["correct"].sum()
        assert set(df["kind"]) == {"main", "catch"}


def test_missing_columns_are_named(trials):
    with pytest.raises(DataError, match="rt_ms.*family|family.*rt_ms"):
        load_trials(trials.drop(columns=["rt_ms", "family"]))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_trials(tmp_path / "nope.csv")


def test_non_binary_outcome_names_rows(trials):
    bad = trials.copy()
    bad["correct"] = bad["correct"].astype(object)
    bad.loc[3, "correct"] = 2
    bad.loc[7, "correct"] = "yes"
    with pytest.raises(DataError, match=r"'correct' must be 0 or 1.*lines 5, 9"):
        load_trials(bad)


def test_bad_kind(trials):
    bad = trials.copy()
    bad.loc[0, "kind"] = "warmup"
    with pytest.raises(DataError, match="kind"):
        load_trials(bad)


def test_accuracy_matches_counts_and_wilson(trials):
    acc = accuracy_by_condition(trials)
    assert list(acc.columns) == ["condition", "n", "correct", "accuracy", "ci_low", "ci_high"]
    assert list(acc["condition"]) == ["fv", "natural", "none"]  # catch trials not counted
    main = trials[trials["kind"] == "main"]
    for row in acc.itertuples():
        sub = main[main["condition"] == row.condition]
        assert row.n == len(sub)
        assert row.correct == sub["correct"].sum()
        lo, hi = proportion_confint(row.correct, row.n, method="wilson")
        assert row.ci_low == pytest.approx(lo) and row.ci_high == pytest.approx(hi)
        assert row.ci_low < row.accuracy < row.ci_high


def test_accuracy_wilson_known_value():
    # Wilson interval for 8/10 (Agresti & Coull 1998, table): 0.4902 .. 0.9433
    df = simulate_trials({"a": 0.5}, n_participants=1, n_items=10, trials_per_participant=10, seed=0)
    df["correct"] = [1] * 8 + [0] * 2
    acc = accuracy_by_condition(df)
    assert acc.loc[0, "ci_low"] == pytest.approx(0.4902, abs=1e-4)
    assert acc.loc[0, "ci_high"] == pytest.approx(0.9433, abs=1e-4)


def test_accuracy_drops_excluded(trials):
    t = trials.copy()
    t.loc[t["participant_id"] == t["participant_id"].iloc[0], "excluded"] = 1
    full = accuracy_by_condition(trials)
    kept = accuracy_by_condition(t)
    assert kept["n"].sum() == full["n"].sum() - 30
    assert accuracy_by_condition(t, drop_excluded=False)["n"].sum() == full["n"].sum()
    assert accuracy_by_condition(t, kind="catch")["n"].sum() == 7 * 3


def test_unanswered_rows_are_not_counted(trials):
    t = trials.copy()
    t["correct"] = t["correct"].astype("float")
    t.loc[t["kind"] == "main", "correct"] = np.where(
        np.arange((t["kind"] == "main").sum()) == 0, np.nan, t.loc[t["kind"] == "main", "correct"])
    acc = accuracy_by_condition(t)
    assert acc["n"].sum() == (trials["kind"] == "main").sum() - 1
