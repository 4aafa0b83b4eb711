"""A load of the trial page: the first one, or a reload that the reload policy acts on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Event, Participant
from .cache import config_of
from .participants import Started, any_trial_shown, restart_participant
from .returns import Action, return_action

__all__ = ["PageLoad", "page_load"]


@dataclass
class PageLoad:
    """What the trial page should do: ``resume`` (the same participant), ``restart`` (``started``
    holds the new attempt and its token) or ``refuse`` (the attempt has ended)."""

    action: Action
    reload: bool
    started: Optional[Started] = None


def page_load(session: Session, participant: Participant, user_agent: Optional[str] = None) -> PageLoad:
    """Record a load of the trial page and apply the reload policy when it is a reload.

    The first load after the start link is not a reload. Each load is stored as a
    ``page_load`` event, so reloads can be counted in the export's audit trail.
    """
    earlier = session.scalar(select(Event.id).where(Event.participant_id == participant.id,
                                                    Event.type == "page_load").limit(1))
    session.add(Event(participant_id=participant.id, type="page_load", data={}))
    session.commit()
    if earlier is None:
        return PageLoad("resume", reload=False)
    cfg = config_of(participant.experiment)
    action = return_action(cfg, participant.status, any_trial_shown(session, participant), via="reload")
    if action == "restart":
        return PageLoad("restart", reload=True, started=restart_participant(session, participant.experiment,
                                                                            participant, user_agent))
    if action == "refuse":
        participant.status = "refused"
        session.commit()
    return PageLoad(action, reload=True)
