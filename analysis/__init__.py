"""Statistics for interp-study exports: loading, exclusions, mixed models, contrasts,
power and reports.

The public API is listed in ``__all__``; everything else is private by name.
"""

from __future__ import annotations

from .contrasts import BaselineComparison, baseline_pairs, compare_to_baselines, marginal_accuracy
from .exclusions import apply_exclusions
from .formula import FormulaError, parse_formula
from .glmm import fit_glmm
from .lmm import fit_lmm
from .load import EXPORT_COLUMNS, DataError, accuracy_by_condition, load_trials, wilson_ci
from .plan import AnalysisPlan, ExclusionRules, load_plan
from .power import simulate_power
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
    "compare_to_baselines",
    "marginal_accuracy",
    "baseline_pairs",
    "BaselineComparison",
    "apply_exclusions",
    "load_plan",
    "AnalysisPlan",
    "ExclusionRules",
    "simulate_power",
    "build_report",
]


def __getattr__(name: str) -> object:
    # The report pulls in matplotlib; import it only when asked for.
    if name == "build_report":
        from .report import build_report

        return build_report
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
