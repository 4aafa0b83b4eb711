"""Export: one row per trial with DESIGN.md's columns (CSV or Parquet)."""

from __future__ import annotations

import datetime as dt

from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Experiment, Item, Participant, Response, Trial
from .cache import config_of
from .exclusions import TrialOutcome, exclusion_reasons
from .participants import aware

__all__ = ["EXPORT_COLUMNS", "export_frame", "write_export"]

EXPORT_COLUMNS = [
    "experiment", "experiment_version", "participant_id", "external_id", "between_condition", "position",
    "block", "kind", "item_id", "condition", "family", "task", "correct_side", "chosen_side", "correct",
    "rt_ms", "shown_at", "answered_at", "excluded", "exclusion_reason",
    # extra columns follow the contract's
    "confidence", "participant_status", "is_pilot", "started_at", "finished_at", "client_time",
]


def _client_iso(ms: Any) -> str | None:
    """The participant's clock (ms since the epoch, as the page sends it) as ISO 8601 UTC."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def _iso(value: Any) -> str | None:
    value = aware(value)
    return value.isoformat() if value is not None else None


def export_frame(session: Session, experiments: list[Experiment], include_pilot: bool = False,
                 answered_only: bool = False) -> pd.DataFrame:
    """One row per scheduled trial of every participant of ``experiments``."""
    from .participants import refresh_timeouts

    rows: list[dict[str, Any]] = []
    for exp in experiments:
        refresh_timeouts(session, exp)  # participants who walked away are exported as timed out
        cfg = config_of(exp)
        query = (select(Participant, Trial, Item, Response)
                 .join(Trial, Trial.participant_id == Participant.id)
                 .join(Item, Item.id == Trial.item_id)
                 .outerjoin(Response, Response.trial_id == Trial.id)
                 .where(Participant.experiment_id == exp.id)
                 .order_by(Participant.ordinal, Trial.position))
        if not include_pilot:
            query = query.where(Participant.is_pilot.is_(False))
        per_participant: dict[int, list[dict[str, Any]]] = defaultdict(list)
        outcomes: dict[int, list[TrialOutcome]] = defaultdict(list)
        status: dict[int, str] = {}
        for p, t, it, r in session.execute(query):
            status[p.id] = p.status
            correct_side = 0 if t.left_option == it.correct else 1
            outcomes[p.id].append(TrialOutcome(t.kind, r is not None, bool(r.correct) if r else False,
                                               r.chosen_side if r else None, r.rt_ms if r else None))
            if answered_only and r is None:
                continue
            per_participant[p.id].append({
                "experiment": exp.slug, "experiment_version": exp.version, "participant_id": p.public_id,
                "external_id": p.external_id, "between_condition": p.between_condition, "position": t.position,
                "block": t.block, "kind": t.kind, "item_id": it.key, "condition": it.condition,
                "family": it.family, "task": exp.task, "correct_side": correct_side,
                "chosen_side": r.chosen_side if r else None,
                "correct": (1 if r.correct else 0) if r else None,
                "rt_ms": r.rt_ms if r else None, "shown_at": _iso(t.shown_at),
                "answered_at": _iso(r.answered_at) if r else None,
                "confidence": r.confidence if r else None, "participant_status": p.status,
                "is_pilot": int(p.is_pilot), "started_at": _iso(p.started_at), "finished_at": _iso(p.finished_at),
                "client_time": _client_iso(r.client_time) if r else None,
            })
        for pid, prow in per_participant.items():
            reasons = exclusion_reasons(cfg, status[pid], outcomes[pid])
            for row in prow:
                row["excluded"] = 1 if reasons else 0
                row["exclusion_reason"] = "; ".join(reasons)
            rows.extend(prow)
    frame = pd.DataFrame(rows, columns=EXPORT_COLUMNS)
    for col in ("correct_side", "chosen_side", "correct", "confidence"):
        frame[col] = frame[col].astype("Int64")
    return frame


def write_export(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write ``frame`` as CSV or Parquet, chosen by the file suffix."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: the export file must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return out
