"""Turning a DataFrame and a formula into the arrays a mixed model needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .design import FixedDesign, ReStructure, build_response
from .formula import Formula, FormulaError, parse_formula
from .load import DataError

__all__ = ["ModelData", "prepare"]


@dataclass
class ModelData:
    """Arrays for one fit, with the design kept for prediction on new data."""

    formula: Formula
    design: FixedDesign
    data: pd.DataFrame
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    re: ReStructure
    n_dropped: int


def _response_columns(formula: Formula, data: pd.DataFrame) -> list[str]:
    exprs = list(formula.binomial_cbind or (formula.response,))
    cols = [c for c in data.columns if any(_mentions(e, str(c)) for e in exprs)]
    return cols


def _mentions(expr: str, col: str) -> bool:
    import re

    return re.search(rf"(?<![A-Za-z0-9_.]){re.escape(col)}(?![A-Za-z0-9_.])", expr) is not None


def prepare(
    data: pd.DataFrame, formula: str | Formula, reference: Mapping[str, object] | None = None
) -> ModelData:
    """Parse ``formula``, drop incomplete rows and build the model matrices.

    Raises
    ------
    DataError
        Unknown columns, no usable rows, or a rank-deficient fixed-effects matrix (for
        example a condition without data).
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError("data must be a pandas DataFrame")
    try:
        f = formula if isinstance(formula, Formula) else parse_formula(formula)
    except FormulaError as exc:
        raise DataError(f"formula: {exc}") from exc
    if not f.random:
        raise DataError("the formula has no random-effects term such as (1|participant_id)")
    used = sorted(f.variables)
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise DataError("formula names column(s) not in the data: " + ", ".join(missing))
    resp = _response_columns(f, data)
    if not resp:
        raise DataError(f"response '{f.response}' does not name a column of the data")
    keep = data[used + resp].notna().all(axis=1)
    d = data.loc[keep].reset_index(drop=True)
    if len(d) == 0:
        raise DataError("no complete rows for the formula's columns")
    design = FixedDesign.from_data(f, d, reference)
    X = design.matrix(d)
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        empty = [c for c, s in zip(design.columns, np.abs(X).sum(axis=0)) if s == 0]
        detail = f" (no rows for {', '.join(empty)})" if empty else ""
        raise DataError(f"fixed-effects matrix is rank deficient: {X.shape[1] - rank} column(s) cannot be estimated{detail}")
    y, w = build_response(f, d)
    re = ReStructure(f.random, d)
    return ModelData(f, design, d, X, y, w, re, int((~keep).sum()))
