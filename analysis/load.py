"""Reading and checking the per-trial export (see DESIGN.md, "Export")."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "EXPORT_COLUMNS",
    "DataError",
    "load_trials",
    "accuracy_by_condition",
    "wilson_ci",
]

#: The export's columns, in contract order (more may follow them).
EXPORT_COLUMNS: tuple[str, ...] = (
    "experiment",
    "experiment_version",
    "participant_id",
    "external_id",
    "between_condition",
    "position",
    "block",
    "kind",
    "item_id",
    "condition",
    "family",
    "task",
    "correct_side",
    "chosen_side",
    "correct",
    "rt_ms",
    "shown_at",
    "answered_at",
    "excluded",
    "exclusion_reason",
)

_KINDS = {"practice", "main", "catch"}


class DataError(ValueError):
    """The data do not meet the export contract or cannot be analysed as asked."""


def _bad_rows(mask: pd.Series, limit: int = 5) -> str:
    idx = list(np.flatnonzero(mask.to_numpy()))
    shown = ", ".join(str(i + 2) for i in idx[:limit])  # +2: header line, 1-based
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"{shown}{more}"


def _binary(df: pd.DataFrame, col: str, allow_missing: bool) -> pd.Series:
    raw = df[col]
    if raw.dtype == bool:
        return raw.astype("int64")
    values = pd.to_numeric(raw, errors="coerce")
    missing = values.isna()
    bad = (~missing & ~values.isin([0, 1])) | (missing & raw.notna())
    if not allow_missing:
        bad = bad | missing
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].head(3).tolist())
        raise DataError(
            f"column '{col}' must be 0 or 1; bad values ({examples}) on data lines "
            f"{_bad_rows(bad)} (line 2 is the first data row)"
        )
    return values.astype("Int64") if allow_missing else values.astype("int64")


def validate_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Check a trial table against the export contract and normalise its types.

    Parameters
    ----------
    df : DataFrame
        One row per trial with at least :data:`EXPORT_COLUMNS`.

    Returns
    -------
    DataFrame
        A copy with ``correct`` and ``excluded`` as integers, ``rt_ms`` numeric and the
        identifier columns as strings.

    Raises
    ------
    DataError
        Missing columns, or values outside their allowed set (the rows are named).
    """
    missing = [c for c in EXPORT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            "the trial table lacks required export column(s): " + ", ".join(missing)
        )
    out = df.copy().reset_index(drop=True)
    kind = out["kind"].astype("string").str.strip().str.lower()
    bad_kind = ~kind.isin(_KINDS)
    if bad_kind.any():
        raise DataError(
            "column 'kind' must be one of practice, main, catch; bad values on data lines "
            f"{_bad_rows(bad_kind)}"
        )
    out["kind"] = kind.astype(object)
    # An unanswered trial may have no outcome; main/catch answers must be 0/1.
    out["correct"] = _binary(out, "correct", allow_missing=True)
    out["excluded"] = _binary(
        out.assign(excluded=out["excluded"].fillna(0)), "excluded", allow_missing=False
    )
    rt = pd.to_numeric(out["rt_ms"], errors="coerce")
    bad_rt = rt.isna() & out["rt_ms"].notna()
    if bad_rt.any():
        raise DataError(f"column 'rt_ms' must be numeric; bad values on data lines {_bad_rows(bad_rt)}")
    out["rt_ms"] = rt.astype("float64")
    for col in ("participant_id", "item_id", "condition", "family", "between_condition"):
        out[col] = out[col].map(lambda v: v if pd.isna(v) else str(v)).astype(object)
    out["exclusion_reason"] = out["exclusion_reason"].astype(object)
    return out


def load_trials(path_or_df: str | PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Read an export (CSV or Parquet file, or a DataFrame) and check its columns.

    Parameters
    ----------
    path_or_df : path or DataFrame
        A ``.csv`` / ``.parquet`` export, or a DataFrame with the export columns.

    Returns
    -------
    DataFrame
        The validated trial table (see :func:`validate_trials`).

    Raises
    ------
    DataError
        If the file cannot be read or a column is missing or malformed.
    """
    if isinstance(path_or_df, pd.DataFrame):
        return validate_trials(path_or_df)
    path = Path(path_or_df)
    if not path.exists():
        raise DataError(f"export file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        elif suffix in {".csv", ".txt", ".gz"}:
            df = pd.read_csv(path, dtype={"participant_id": str, "item_id": str})
        else:
            raise DataError(f"{path}: unknown export format '{suffix}' (use .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read the export ({exc})") from exc
    try:
        return validate_trials(df)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def wilson_ci(k: np.ndarray, n: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``k`` successes out of ``n`` (arrays broadcast)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def accuracy_by_condition(
    df: pd.DataFrame, kind: str | None = "main", drop_excluded: bool = True
) -> pd.DataFrame:
    """Raw accuracy per condition with Wilson 95% intervals.

    Parameters
    ----------
    df : DataFrame
        A trial table (export columns; validated here).
    kind : str or None, default "main"
        Trial kind to keep (``None`` keeps all kinds).
    drop_excluded : bool, default True
        Drop rows with ``excluded == 1``.

    Returns
    -------
    DataFrame
        Columns ``condition, n, correct, accuracy, ci_low, ci_high``, one row per
        condition, sorted by condition. Unanswered trials (no ``correct``) are not counted.
    """
    data = validate_trials(df)
    if kind is not None:
        data = data[data["kind"] == kind]
    if drop_excluded:
        data = data[data["excluded"] == 0]
    data = data[data["correct"].notna()]
    cols = ["condition", "n", "correct", "accuracy", "ci_low", "ci_high"]
    if data.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols}).astype(
            {"condition": object, "n": "int64", "correct": "int64"}
        )
    g = data.groupby("condition", sort=True)["correct"]
    out = pd.DataFrame(
        {"n": g.size().astype("int64"), "correct": g.sum().astype("int64")}
    ).reset_index()
    out["accuracy"] = out["correct"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_ci(out["correct"].to_numpy(), out["n"].to_numpy())
    return out[cols]
