"""Statistics for interp-study exports: loading, exclusions, mixed models, contrasts,
power and reports.

The public API is listed in ``__all__``; everything else is private by name.
"""

from __future__ import annotations

from .formula import FormulaError, parse_formula
from .glmm import fit_glmm
from .lmm import fit_lmm
from .load import EXPORT_COLUMNS, DataError, accuracy_by_condition, load_trials, wilson_ci
from .results import MixedModelResult
from .simulate import simulate_trials

__all__ = [
    "EXPORT_COLUMNS",
    "DataError",
    "load_trials",
    "accuracy_by_condition",
    "wilson_ci",
    "simulate_trials",
    "fit_glmm",
    "fit_lmm",
    "MixedModelResult",
    "parse_formula",
    "FormulaError",
]
