"""The preregistered analysis plan: a YAML file (or dict), or an experiment file's parts.

A plan file::

    formula: correct ~ condition + (1|participant_id) + (1|family)
    rt_formula: log(rt_ms) ~ condition + (1|participant_id) + (1|family)
    reference: {condition: none}
    baselines: {feature_vis: [natural, none]}      # or conditions: [manifest-style list]
    exclusions: {catch_min_accuracy: 0.8, min_rt_ms: 200, max_fast_fraction: 0.1,
                 max_side_bias: 0.9, require_complete: true}
    power: {n_participants: [20, 40, 60], n_sims: 100}

An experiment YAML (DESIGN.md) is accepted too: its ``analysis`` section is the plan,
``catch.min_accuracy`` becomes ``exclusions.catch_min_accuracy`` and
``trials_per_participant`` the expected number of main trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .load import DataError

__all__ = ["ExclusionRules", "PowerSettings", "AnalysisPlan", "load_plan"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExclusionRules(_Strict):
    """Participant- and trial-level exclusion rules (all optional)."""

    catch_min_accuracy: float | None = Field(None, ge=0, le=1)
    min_rt_ms: float | None = Field(None, ge=0)
    max_fast_fraction: float | None = Field(None, ge=0, le=1)
    max_side_bias: float | None = Field(None, ge=0.5, le=1)
    require_complete: bool = False
    expected_main_trials: int | None = Field(None, ge=1)
    drop_fast_trials: bool = False
    max_rt_ms: float | None = Field(None, gt=0)


class PowerSettings(_Strict):
    """Settings for the power section of the report."""

    n_participants: list[int] = Field(default_factory=lambda: [20, 40, 60, 80])
    n_sims: int = Field(50, ge=1)
    participant_sd: float | None = Field(None, ge=0)
    item_sd: float | None = Field(None, ge=0)
    n_items: int | None = Field(None, ge=1)
    trials_per_participant: int | None = Field(None, ge=1)
    accuracy: dict[str, float] | None = None


class AnalysisPlan(_Strict):
    """What to fit and compare, and whom to exclude."""

    formula: str = "correct ~ condition + (1|participant_id) + (1|family)"
    rt_formula: str | None = "log(rt_ms) ~ condition + (1|participant_id) + (1|family)"
    reference: dict[str, str] = Field(default_factory=dict)
    baselines: dict[str, list[str]] | None = None
    conditions: list[dict[str, Any]] | None = None
    exclusions: ExclusionRules = Field(default_factory=ExclusionRules)
    power: PowerSettings | None = None
    alpha: float = Field(0.05, gt=0, lt=1)

    @field_validator("baselines", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: ([b] if isinstance(b, str) else b) for k, b in v.items()}
        return v

    @field_validator("reference", mode="before")
    @classmethod
    def _strs(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): str(b) for k, b in v.items()}
        return v


def _from_experiment(doc: Mapping[str, Any]) -> dict[str, Any]:
    plan = dict(doc.get("analysis") or {})
    excl = dict(plan.get("exclusions") or {})
    catch = doc.get("catch") or {}
    if isinstance(catch, Mapping) and catch.get("min_accuracy") is not None:
        excl.setdefault("catch_min_accuracy", catch["min_accuracy"])
    if doc.get("trials_per_participant") is not None:
        excl.setdefault("expected_main_trials", doc["trials_per_participant"])
    # the study server's defaults for the same rules (study_server/config_schema.py)
    timing = doc.get("timing") or {}
    excl.setdefault("min_rt_ms", timing.get("min_rt_ms", 200.0) if isinstance(timing, Mapping) else 200.0)
    limit = timing.get("max_trial_seconds") if isinstance(timing, Mapping) else None
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0:
        excl.setdefault("max_rt_ms", float(limit) * 1000)  # answers slower than the limit are dropped
    excl.setdefault("require_complete", True)
    if excl:
        plan["exclusions"] = excl
    return plan


def load_plan(source: str | PathLike[str] | Mapping[str, Any] | AnalysisPlan | None) -> AnalysisPlan:
    """Read and validate an analysis plan (YAML path, dict, or ``None`` for defaults).

    Raises
    ------
    DataError
        Unreadable YAML or an invalid field (its path and the reason are named).
    """
    if source is None:
        return AnalysisPlan()
    if isinstance(source, AnalysisPlan):
        return source
    where = "plan"
    if isinstance(source, Mapping):
        doc: Any = dict(source)
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise DataError(f"plan file not found: {path}")
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DataError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, Mapping):
        raise DataError(f"{where}: the plan must be a mapping of keys to values")
    if "slug" in doc or "stimuli" in doc:  # an experiment file
        doc = _from_experiment(doc)
    try:
        return AnalysisPlan.model_validate(doc)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise DataError(f"{where}: invalid plan ({msgs})") from exc
