"""Live progress of an experiment for the admin pages: counts per condition, durations, catch accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config_schema import ExperimentConfig
from ..models import Experiment, Participant, Response, Trial
from .cache import config_of
from .exclusions import TrialOutcome, exclusion_reasons
from .participants import aware

__all__ = ["ConditionProgress", "Progress", "experiment_progress", "participant_outcomes"]

WITHIN = "(within: all conditions)"


@dataclass
class ConditionProgress:
    """One row of the progress table (one between-subject condition, or everyone for within designs)."""

    condition: str
    target: Optional[int] = None
    started: int = 0  # people who began (a restarted attempt and its restart count once)
    in_progress: int = 0
    finished: int = 0
    timed_out: int = 0
    refused: int = 0
    excluded: int = 0  # finished participants that the exclusion rules exclude
    durations_s: list[float] = field(default_factory=list)
    catch_answered: int = 0
    catch_correct: int = 0

    @property
    def median_duration_min(self) -> Optional[float]:
        return round(statistics.median(self.durations_s) / 60, 2) if self.durations_s else None

    @property
    def catch_accuracy(self) -> Optional[float]:
        return round(self.catch_correct / self.catch_answered, 3) if self.catch_answered else None


@dataclass
class Progress:
    rows: list[ConditionProgress]
    total: ConditionProgress
    declined: int


def participant_outcomes(session: Session, participant_ids: list[int]) -> dict[int, list[TrialOutcome]]:
    """Every scheduled trial of the given participants, answered or not, in position order."""
    out: dict[int, list[TrialOutcome]] = defaultdict(list)
    if not participant_ids:
        return out
    query = (select(Trial.participant_id, Trial.kind, Response.id, Response.correct, Response.chosen_side,
                    Response.rt_ms)
             .outerjoin(Response, Response.trial_id == Trial.id)
             .where(Trial.participant_id.in_(participant_ids)).order_by(Trial.participant_id, Trial.position))
    for pid, kind, rid, correct, side, rt in session.execute(query):
        out[pid].append(TrialOutcome(kind, rid is not None, bool(correct), side, rt))
    return out


def _add(row: ConditionProgress, p: Participant, outcomes: list[TrialOutcome], cfg: ExperimentConfig) -> None:
    if p.status != "restarted":
        row.started += 1
    row.in_progress += p.status == "started"
    row.timed_out += p.status == "timed_out"
    row.refused += p.status == "refused"
    catch = [t for t in outcomes if t.kind == "catch" and t.answered]
    row.catch_answered += len(catch)
    row.catch_correct += sum(t.correct for t in catch)
    if p.status == "finished":
        row.finished += 1
        start, end = aware(p.started_at), aware(p.finished_at)
        if start and end:
            row.durations_s.append((end - start).total_seconds())
        if exclusion_reasons(cfg, p.status, outcomes):
            row.excluded += 1


def experiment_progress(session: Session, exp: Experiment, include_pilot: bool = False) -> Progress:
    """Counts per condition (pilot participants left out unless ``include_pilot``)."""
    cfg = config_of(exp)
    query = select(Participant).where(Participant.experiment_id == exp.id)
    if not include_pilot:
        query = query.where(Participant.is_pilot.is_(False))
    people = list(session.scalars(query))
    declined = sum(p.status == "declined" for p in people)
    people = [p for p in people if p.status != "declined"]
    outcomes = participant_outcomes(session, [p.id for p in people])
    if cfg.design == "between":
        rows = {c: ConditionProgress(c, cfg.participants_per_condition) for c in cfg.conditions}
    else:
        rows = {WITHIN: ConditionProgress(WITHIN, None)}
    total = ConditionProgress("total", None)
    for p in people:
        key = p.between_condition if cfg.design == "between" else WITHIN
        row = rows.setdefault(key or "(none)", ConditionProgress(key or "(none)"))
        _add(row, p, outcomes[p.id], cfg)
        _add(total, p, outcomes[p.id], cfg)
    return Progress(rows=list(rows.values()), total=total, declined=declined)
