"""Exclusion flags computed into the export as the experiment config says.

Rules (each optional, from ``catch.min_accuracy`` and ``analysis.exclusions``):
catch accuracy below a threshold, too many too-fast responses, side bias, incomplete session;
an attempt abandoned by ``reload_policy: restart`` is always flagged ``restarted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..config_schema import ExperimentConfig

__all__ = ["TrialOutcome", "exclusion_reasons"]


@dataclass(frozen=True)
class TrialOutcome:
    kind: str
    answered: bool
    correct: bool
    chosen_side: int | None
    rt_ms: float | None


def exclusion_reasons(cfg: ExperimentConfig, status: str, trials: Iterable[TrialOutcome]) -> list[str]:
    """Reasons (possibly none) to exclude one participant, in a fixed order."""
    trials = list(trials)
    rules = cfg.analysis.exclusions
    reasons: list[str] = []
    catch = [t for t in trials if t.kind == "catch" and t.answered]
    threshold = rules.catch_min_accuracy if rules.catch_min_accuracy is not None else cfg.catch.min_accuracy
    if catch and threshold:
        acc = sum(t.correct for t in catch) / len(catch)
        if acc < threshold:
            reasons.append(f"catch_accuracy {acc:.2f} < {threshold:.2f}")
    main = [t for t in trials if t.kind == "main" and t.answered]
    if rules.max_fast_fraction is not None and main:
        fast = sum(1 for t in main if t.rt_ms is not None and t.rt_ms < cfg.timing.min_rt_ms) / len(main)
        if fast > rules.max_fast_fraction:
            reasons.append(f"too_fast {fast:.2f} of responses < {cfg.timing.min_rt_ms:g} ms")
    if rules.max_side_bias is not None and main:
        left = sum(1 for t in main if t.chosen_side == 0) / len(main)
        bias = max(left, 1 - left)
        if bias > rules.max_side_bias:
            reasons.append(f"side_bias {bias:.2f} > {rules.max_side_bias:.2f}")
    if rules.require_complete and status != "finished":
        reasons.append("incomplete")
    if status == "restarted":  # always: the same person's new attempt is the one that counts
        reasons.append("restarted")
    return reasons
