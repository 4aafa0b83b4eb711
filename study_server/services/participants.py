"""Starting participants, serving their current trial and storing responses."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config_schema import ExperimentConfig
from ..errors import Conflict, NotFound, Unauthorized
from ..models import Event, Experiment, Participant, Response, Trial, utcnow
from ..db import end_read
from .cache import ItemCache, config_of
from .experiments import item_refs
from .returns import return_action
from .scheduling import build_schedule, participant_seed

__all__ = ["start_participant", "participant_for_token", "record_response", "record_event",
           "hash_token", "Started", "ResponseResult", "progress", "decline", "expire_stale",
           "restart_participant", "refresh_timeouts", "ACTIVE", "ENDED", "any_trial_shown", "schedule_of", "Schedule", "TrialState", "participant_and_schedule", "ParticipantState", "params_of",
           "mark_shown"]

ACTIVE = ("started", "finished")  # statuses that hold a slot of their condition
ENDED = ("timed_out", "declined", "refused", "restarted")  # statuses whose token no longer works


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """SQLite hands back naive datetimes; they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


@dataclass
class Started:
    participant: Any  # a ``Participant``, or the ``ParticipantState`` of a new start
    token: str
    resumed: bool
    restarted: bool = False


def _lock_experiment(session: Session, experiment_id: int) -> Any:
    """Serialize starts per experiment: a row lock on PostgreSQL, the write lock on SQLite.

    Returns the locked row's ``id``, ``slug``, ``status`` and ``n_participants`` (read
    under the lock, never from an ORM object loaded before it).
    """
    return session.connection().execute(_LOCK_EXPERIMENT, {"id": experiment_id}).one()


def _id_of(exp: Any) -> int:
    return exp if isinstance(exp, int) else exp.id


def expire_stale(session: Session, exp: Any, cfg: ExperimentConfig) -> int:
    """Mark participants idle longer than the session timeout as timed out (frees their slot).

    Starts run it only where assignment depends on it (between-subject designs and
    participant targets); the progress page and exports run it before they count.
    """
    cutoff = utcnow() - dt.timedelta(minutes=cfg.timing.session_timeout_minutes)
    result = session.execute(update(Participant)
                             .where(Participant.experiment_id == _id_of(exp), Participant.status == "started",
                                    Participant.last_seen_at < cutoff)
                             .values(status="timed_out"))
    return result.rowcount or 0


def _choose_between(session: Session, exp: Any, cfg: ExperimentConfig, ordinal: int) -> Optional[str]:
    if cfg.design != "between":
        return None
    counts = dict(session.execute(
        select(Participant.between_condition, func.count(Participant.id))
        .where(Participant.experiment_id == _id_of(exp), Participant.status.in_(ACTIVE),
               Participant.is_pilot.is_(False))
        .group_by(Participant.between_condition)).all())
    target = cfg.participants_per_condition
    open_conds = [c for c in cfg.conditions if target is None or counts.get(c, 0) < target]
    if not open_conds:
        raise Conflict("this study is full: every condition has reached its participant target", code="study_full")
    fewest = min(counts.get(c, 0) for c in open_conds)
    tied = [c for c in open_conds if counts.get(c, 0) == fewest]
    # rotate the tie-break with the ordinal so no condition is systematically first
    return tied[(ordinal - 1) % len(tied)]


def refresh_timeouts(session: Session, exp: Experiment) -> int:
    """``expire_stale`` in a transaction of its own (before counting or exporting)."""
    n = expire_stale(session, exp, config_of(exp))
    session.commit()
    return n


def start_participant(session: Session, exp: "Experiment | int", external_id: Optional[str], params: dict[str, str],
                      user_agent: Optional[str] = None, pilot: bool = False,
                      refs: Optional[list[Any]] = None, cfg: Optional[ExperimentConfig] = None) -> Started:
    """Create a participant and store their whole schedule, or handle a returning external id.

    A returning external id is resumed, restarted or refused as ``return_action`` decides;
    it is never counted twice, also when two requests with the same id race each other.
    ``refs`` and ``cfg`` (the experiment's item refs and config, read before the write
    transaction) keep the time under the experiment lock short; the common case (a new
    participant) runs prepared core statements only.
    """
    # the identity, not exp.id: ``exp`` may come expired from a read transaction that ended
    exp_id = exp if isinstance(exp, int) else sa_inspect(exp).identity[0]
    locked = _lock_experiment(session, exp_id)
    conn = session.connection()
    if cfg is None:
        cfg = config_of(session.get(Experiment, exp_id))
    if locked.status != "live" and not pilot:
        session.rollback()
        raise Conflict(f"this study is {locked.status} and takes no new participants", code=f"study_{locked.status}")
    if external_id:
        # any version of this study: a new version never makes a returning person new
        existing_id = conn.execute(_RETURNING_ID, {"slug": locked.slug, "external_id": external_id}).scalar()
        if existing_id is not None:
            return _returning(session, session.get(Experiment, exp_id), session.get(Participant, existing_id),
                              cfg, user_agent)
    if cfg.design == "between" or cfg.participants_per_condition is not None:
        expire_stale(session, exp_id, cfg)  # a timed-out participant frees their slot
    ordinal = locked.n_participants + 1
    between = _choose_between(session, exp_id, cfg, ordinal)
    participant, token = _create(session, exp_id, cfg, ordinal, between, external_id or None, params, user_agent,
                                 pilot, refs=refs)
    session.commit()  # starts hold the experiment lock, so an external id cannot race in twice
    return Started(participant, token, resumed=False)


def _returning(session: Session, exp: Experiment, existing: Participant, cfg: ExperimentConfig,
               user_agent: Optional[str]) -> Started:
    """A start link opened again by someone who has a participant already (under the lock)."""
    action = return_action(cfg, existing.status, any_trial_shown(session, existing), via="start_link")
    if action == "resume":
        token = secrets.token_urlsafe(32)
        existing.token_hash = hash_token(token)
        existing.last_seen_at = utcnow()
        session.commit()
        return Started(existing, token, resumed=True)
    if action == "restart":
        return restart_participant(session, exp, existing, user_agent)
    session.rollback()
    if existing.status in ("timed_out", "declined", "refused"):
        raise Conflict(f"this participation has ended ({existing.status})", code="participation_ended")
    raise Conflict("this id has already taken part in the study", code="already_participated")


def _create(session: Session, exp_id: int, cfg: ExperimentConfig, ordinal: int, between: Optional[str],
            external_id: Optional[str], params: dict[str, Any], user_agent: Optional[str], pilot: bool,
            attempt: int = 1, restarted_from: Optional[int] = None,
            refs: Optional[list[Any]] = None) -> tuple[ParticipantState, str]:
    """Add a participant with their stored schedule and count them on the experiment row
    (the caller holds the experiment lock and commits)."""
    seed = participant_seed(cfg.seed, ordinal)
    schedule = build_schedule(cfg, refs if refs is not None else item_refs(session, exp_id), ordinal, seed, between)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    public_id = secrets.token_hex(8)
    conn = session.connection()
    pid = conn.execute(_INSERT_PARTICIPANT, {
        "public_id": public_id, "token_hash": hash_token(token), "experiment_id": exp_id, "ordinal": ordinal,
        "external_id": external_id, "params": params, "between_condition": between, "seed": seed,
        "status": "started", "is_pilot": pilot, "user_agent": (user_agent or "")[:500], "attempt": attempt,
        "restarted_from_id": restarted_from, "started_at": now, "last_seen_at": now}).scalar_one()
    conn.execute(_COUNT_PARTICIPANT, {"exp_id": exp_id, "n": ordinal})
    conn.execute(_INSERT_TRIAL, [{"participant_id": pid, "position": s.position, "block": s.block, "kind": s.kind,
                                  "item_id": s.item_id, "left_option": s.left_option} for s in schedule])
    return ParticipantState(pid, exp_id, "started", now, external_id, public_id, dict(params)), token


def restart_participant(session: Session, exp: Experiment, old: Participant,
                        user_agent: Optional[str] = None) -> Started:
    """Start ``old`` over with a fresh schedule (reload_policy 'restart').

    The old attempt keeps everything it stored and gets status ``restarted`` (it no longer
    counts towards its condition's target); the new attempt takes over its between-subject
    condition, external id and recruitment parameters, with a new ordinal and seed. So the
    slot is handed over, never counted twice.
    """
    cfg = config_of(exp)
    locked = _lock_experiment(session, exp.id)
    session.refresh(old)
    if old.status != "started":
        session.rollback()
        raise Conflict(f"this participation cannot restart ({old.status})", code="participation_ended")
    old.status = "restarted"
    session.flush()
    state, token = _create(session, locked.id, cfg, locked.n_participants + 1, old.between_condition, old.external_id,
                           dict(old.params), user_agent or old.user_agent, old.is_pilot,
                           attempt=old.attempt + 1, restarted_from=old.id)
    session.commit()
    return Started(session.get(Participant, state.id), token, resumed=False, restarted=True)


def decline(session: Session, exp: Experiment) -> None:
    """Store only that someone declined consent (no id, no parameters, no schedule)."""
    locked = _lock_experiment(session, exp.id)
    ordinal = locked.n_participants + 1
    session.add(Participant(public_id=secrets.token_hex(8), token_hash=hash_token(secrets.token_urlsafe(32)),
                            experiment_id=locked.id, ordinal=ordinal, external_id=None, params={},
                            seed=0, status="declined"))
    session.execute(_COUNT_PARTICIPANT, {"exp_id": locked.id, "n": ordinal})
    session.commit()


def participant_for_token(session: Session, token: Optional[str], cache: Optional[ItemCache] = None) -> Participant:
    """The participant holding ``token``; ends (and refuses) a participation idle for too long."""
    if not token:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>'", code="missing_token")
    participant = session.scalars(select(Participant).where(Participant.token_hash == hash_token(token))).first()
    return _check_active(session, participant, cache)


@dataclass
class ParticipantState:
    """What the hot path needs of a participant (plain values, never expired by a rollback).

    ``params`` (the recruitment parameters) are loaded only when needed: see ``params_of``.
    """

    id: int
    experiment_id: int
    status: str
    last_seen_at: Optional[dt.datetime]
    external_id: Optional[str]
    public_id: str
    params: Optional[dict[str, Any]] = None


def participant_and_schedule(session: Session, token: Optional[str],
                             cache: Optional[ItemCache] = None) -> tuple[ParticipantState, "Schedule"]:
    """The participant holding ``token`` and their schedule, in one prepared query (the hot path).

    Ends (and refuses) a participation idle for too long, like ``participant_for_token``.
    """
    if not token:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>'", code="missing_token")
    rows = session.execute(_HOT_QUERY, {"token_hash": hash_token(token)}).all()
    if not rows:
        raise Unauthorized("unknown or expired token", code="bad_token")
    participant = ParticipantState(*rows[0][:6])
    _check_active(session, participant, cache if cache is not None else ItemCache())
    return participant, Schedule([TrialState(*row[6:]) for row in rows if row[6] is not None])


def params_of(session: Session, participant: Any) -> dict[str, Any]:
    """The recruitment parameters of ``participant`` (a ``Participant`` or ``ParticipantState``)."""
    if getattr(participant, "params", None) is None:
        participant.params = session.scalar(select(Participant.params).where(Participant.id == participant.id)) or {}
    return participant.params


def _check_active(session: Session, participant: Any, cache: Optional[ItemCache]) -> Any:
    if participant is None:
        raise Unauthorized("unknown or expired token", code="bad_token")
    if participant.status in ENDED:
        raise Unauthorized(f"this participation has ended ({participant.status})", code="participation_ended")
    cfg = (cache.config(session, participant.experiment_id) if cache is not None
           else config_of(participant.experiment))
    if participant.status == "started" and _idle_too_long(participant, cfg):
        pid = participant.id
        session.rollback()  # end what may be a read-only transaction before writing
        session.execute(update(Participant).where(Participant.id == pid, Participant.status == "started")
                        .values(status="timed_out"))
        session.commit()
        raise Unauthorized("this participation has ended (timed_out)", code="participation_ended")
    return participant


def _idle_too_long(participant: Any, cfg: ExperimentConfig) -> bool:
    last = aware(participant.last_seen_at)
    return last is not None and utcnow() - last > dt.timedelta(minutes=cfg.timing.session_timeout_minutes)


def any_trial_shown(session: Session, participant: Participant) -> bool:
    """Whether the participant has been served a trial (the reload policies apply only then)."""
    return session.scalar(select(Trial.id).where(Trial.participant_id == participant.id,
                                                 Trial.shown_at.is_not(None)).limit(1)) is not None


@dataclass(frozen=True)
class TrialState:
    """One scheduled trial and whether it has a response (what the hot path needs)."""

    id: int
    position: int
    block: int
    kind: str
    item_id: int
    left_option: int
    shown_at: Optional[dt.datetime]
    response_id: Optional[int]


@dataclass(frozen=True)
class Schedule:
    """A participant's trials in position order, from one query."""

    trials: list[TrialState]

    @property
    def total(self) -> int:
        return len(self.trials)

    @property
    def answered(self) -> int:
        return sum(1 for t in self.trials if t.response_id is not None)

    def current_index(self) -> Optional[int]:
        for i, t in enumerate(self.trials):
            if t.response_id is None:
                return i
        return None

    def current(self) -> Optional[TrialState]:
        i = self.current_index()
        return None if i is None else self.trials[i]

    def after(self, state: TrialState) -> Optional[TrialState]:
        """The trial after ``state`` (matched by id: ``state`` may come from a fresher read)."""
        i = next(i for i, t in enumerate(self.trials) if t.id == state.id)
        return self.trials[i + 1] if i + 1 < len(self.trials) else None

    def by_id(self, trial_id: int) -> Optional[TrialState]:
        return next((t for t in self.trials if t.id == trial_id), None)


_TRIAL_STATE_COLUMNS = (Trial.id, Trial.position, Trial.block, Trial.kind, Trial.item_id, Trial.left_option,
                        Trial.shown_at, Response.id.label("response_id"))

# The hot path's statements are built once: SQLAlchemy then reuses their compiled form
# without rebuilding the expression or its cache key at every request.
_HOT_QUERY = (select(Participant.id, Participant.experiment_id, Participant.status, Participant.last_seen_at,
                     Participant.external_id, Participant.public_id, *_TRIAL_STATE_COLUMNS)
              .outerjoin(Trial, Trial.participant_id == Participant.id)
              .outerjoin(Response, Response.trial_id == Trial.id)
              .where(Participant.token_hash == bindparam("token_hash"))
              .order_by(Trial.position))
_INSERT_RESPONSE = insert(Response)
_MARK_SHOWN = (update(Trial).where(Trial.id == bindparam("trial_id"), Trial.shown_at.is_(None))
               .values(shown_at=bindparam("now")))
_TOUCH = (update(Participant).where(Participant.id == bindparam("pid"), Participant.status == "started")
          .values(last_seen_at=bindparam("now")))
_TOUCH_ANY = update(Participant).where(Participant.id == bindparam("pid")).values(last_seen_at=bindparam("now"))
_FINISH = (update(Participant).where(Participant.id == bindparam("pid"), Participant.status == "started")
           .values(last_seen_at=bindparam("now"), status="finished", finished_at=bindparam("now")))
_CORRECT_OF = select(Response.correct).where(Response.trial_id == bindparam("trial_id"))

# starts
_LOCK_EXPERIMENT = (select(Experiment.id, Experiment.slug, Experiment.status, Experiment.n_participants)
                    .where(Experiment.id == bindparam("id")).with_for_update())
_RETURNING_ID = (select(Participant.id)
                 .where(Participant.experiment_id.in_(select(Experiment.id).where(Experiment.slug == bindparam("slug"))),
                        Participant.external_id == bindparam("external_id"))
                 .order_by(Participant.started_at.desc(), Participant.attempt.desc()).limit(1))
_INSERT_PARTICIPANT = insert(Participant).returning(Participant.id)
_COUNT_PARTICIPANT = (update(Experiment).where(Experiment.id == bindparam("exp_id"))
                      .values(n_participants=bindparam("n")))
_INSERT_TRIAL = insert(Trial)


def schedule_of(session: Session, participant: Participant) -> Schedule:
    """Every trial of ``participant`` with its response id (None when unanswered)."""
    rows = session.execute(select(*_TRIAL_STATE_COLUMNS)
                           .outerjoin(Response, Response.trial_id == Trial.id)
                           .where(Trial.participant_id == participant.id)
                           .order_by(Trial.position)).all()
    return Schedule([TrialState(*row) for row in rows])


def progress(session: Session, participant: Participant) -> tuple[int, int]:
    """(answered, total) trials."""
    sched = schedule_of(session, participant)
    return sched.answered, sched.total


@dataclass
class ResponseResult:
    duplicate: bool
    correct: bool
    kind: str
    finished: bool
    # the trial the participant is on after this response (None when none is left) and
    # how many they have answered; for serving it in the same reply
    next_state: Optional[TrialState] = None
    answered: int = 0
    next_marked: bool = False  # whether this response's transaction already set the next trial's shown_at


def _existing_result(session: Session, state: TrialState, sched: Schedule) -> ResponseResult:
    correct = session.scalar(_CORRECT_OF, {"trial_id": state.id})
    return ResponseResult(duplicate=True, correct=bool(correct), kind=state.kind, finished=False,
                          next_state=sched.current(), answered=sched.answered)


def record_response(session: Session, participant: Participant, trial_id: int, choice: int,
                    rt_ms: Optional[float], confidence: Optional[int] = None,
                    items: Optional[ItemCache] = None, schedule: Optional[Schedule] = None,
                    serve_next: bool = False, client_time: Optional[float] = None) -> ResponseResult:
    """Store one response; the same trial again returns the first result and writes nothing.

    With ``serve_next`` the caller hands the next trial out in the same reply, so the same
    write transaction records it as shown (``trial.shown_at``), as ``GET /trial`` would.

    A read of the participant's schedule decides everything (unknown trial, replay, not
    current, last trial); then a short write transaction inserts the response and updates
    the trial's ``shown_at`` and the participant's status. A concurrent duplicate loses on
    the unique constraint of ``response.trial_id`` and gets the first result, so the read
    may run in a separate (on SQLite: lock-free) transaction.
    """
    pid = participant.id
    sched = schedule if schedule is not None else schedule_of(session, participant)
    state = sched.by_id(trial_id)
    if state is None:
        raise NotFound(f"no trial {trial_id} for this participant", code="unknown_trial")
    if state.response_id is not None:
        result = _existing_result(session, state, sched)
        session.rollback()
        return result
    current = sched.current()
    if current is None or current.id != state.id:
        session.rollback()
        expected = None if current is None else current.id
        raise Conflict(f"trial {trial_id} is not the current trial (current: {expected})", code="not_current")
    item = (items or ItemCache()).get(session, state.item_id)
    correct = choice == (0 if state.left_option == item.correct else 1)
    nxt = sched.after(state)
    finished = nxt is None
    mark_next = serve_next and nxt is not None and nxt.shown_at is None
    end_read(session)  # SQLite: the write below is one short BEGIN IMMEDIATE transaction
    now = utcnow()
    try:
        # core statements on the session's connection: no ORM bookkeeping on the hot path
        conn = session.connection()
        conn.execute(_INSERT_RESPONSE, {"trial_id": state.id, "chosen_side": choice, "correct": correct,
                                        "rt_ms": rt_ms, "confidence": confidence, "client_time": client_time,
                                        "answered_at": now})
        if state.shown_at is None:
            conn.execute(_MARK_SHOWN, {"trial_id": state.id, "now": now})
        if mark_next:
            conn.execute(_MARK_SHOWN, {"trial_id": nxt.id, "now": now})
        # never resurrect an attempt that ended (restarted, timed out, refused) meanwhile
        conn.execute(_FINISH if finished else _TOUCH, {"pid": pid, "now": now})
        session.commit()
    except IntegrityError:  # a concurrent duplicate stored it first
        session.rollback()
        return _existing_result(session, state, schedule_of(session, participant))
    return ResponseResult(duplicate=False, correct=correct, kind=state.kind, finished=finished, next_state=nxt,
                          answered=sched.answered + 1, next_marked=mark_next)


def mark_shown(session: Session, participant_id: int, last_seen_at: Optional[dt.datetime],
               state: TrialState) -> None:
    """Record when a trial was first served (the page measures RT itself) and that the participant is active.

    Runs in a transaction of its own: call it after ending the read that found ``state``.
    """
    now = utcnow()
    last = aware(last_seen_at)
    touch = last is None or (now - last).total_seconds() > 30
    if state.shown_at is None or touch:
        conn = session.connection()
        if state.shown_at is None:
            conn.execute(_MARK_SHOWN, {"trial_id": state.id, "now": now})
        if touch:
            conn.execute(_TOUCH_ANY, {"pid": participant_id, "now": now})
        session.commit()


def record_event(session: Session, participant: Participant, type_: str, trial_id: Optional[int],
                 data: dict[str, Any]) -> None:
    if trial_id is not None:
        trial = session.get(Trial, trial_id)
        if trial is None or trial.participant_id != participant.id:
            raise NotFound(f"no trial {trial_id} for this participant", code="unknown_trial")
    session.add(Event(participant_id=participant.id, trial_id=trial_id, type=type_[:64], data=data))
    session.commit()


