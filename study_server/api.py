"""Participant API under ``/api/v1`` (the page and bots use the same endpoints)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config_schema import ExperimentConfig
from .db import begin_read, end_read, get_session
from .errors import BadRequest, Forbidden
from .models import Participant
from .services import participants as svc
from .services.cache import ItemCache, ItemView
from .services.experiments import latest_experiment_id
from .services.recruitment import Completion, check_startable, completion_for, external_id_of, recorded_params

__all__ = ["bp", "trial_payload", "completion_url", "completion"]

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: Optional[str] = Field(None, max_length=200)
    params: dict[str, str] = Field(default_factory=dict, max_length=50)
    pilot: bool = False


class ResponseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal[0, 1]
    rt_ms: float = Field(ge=0, le=24 * 3600 * 1000, allow_inf_nan=False)
    confidence: Optional[int] = Field(None, ge=1, le=7)
    # the participant's clock when they answered: milliseconds since the Unix epoch (Date.now())
    client_time: Optional[float] = Field(None, ge=0, le=1e14, allow_inf_nan=False)

    @field_validator("choice", "rt_ms", "confidence", "client_time", mode="before")
    @classmethod
    def _json_numbers_only(cls, value: Any) -> Any:
        # lax parsing would read true as 1 and "5" as 5.0: a client bug would then be stored
        # as a plausible answer or response time
        if isinstance(value, (bool, str)):
            raise ValueError("must be a JSON number")
        return value


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64)
    trial_id: Optional[int] = Field(None, ge=1, le=2**31 - 1)  # an INTEGER id column (PostgreSQL: 2**31 - 1)
    data: dict[str, Any] = Field(default_factory=dict)


def _json_body(model: type[BaseModel]) -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)", code="bad_json")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="bad_json")
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise BadRequest(f"{field}: {err['msg']}", code="invalid_field") from None


def _bearer() -> Optional[str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip() or None
    return None


def _participant() -> Participant:
    return svc.participant_for_token(get_session(), _bearer(), _items())


def _image_url(experiment_id: int, path: str) -> str:
    return url_for("pages.media", experiment_id=experiment_id, filename=path)


def _items() -> ItemCache:
    return current_app.extensions["item_cache"]


def trial_payload(state: svc.TrialState, item: ItemView, experiment_id: int, total: int) -> dict[str, Any]:
    """What the client sees of a trial: nothing that says which option is correct.

    Catch trials are served as ``main`` so that an attention check does not announce itself.
    """

    def option(o: tuple[str, str]) -> dict[str, str]:
        return {"image": _image_url(experiment_id, o[1])} if o[0] == "image" else {"text": o[1]}

    left, right = item.options[state.left_option], item.options[1 - state.left_option]
    return {
        "id": state.id, "position": state.position, "total": total,
        "kind": "practice" if state.kind == "practice" else "main", "block": state.block,
        "prompt": item.prompt,
        "context": [{"label": label, "images": [_image_url(experiment_id, p) for p in images]}
                    for label, images in item.context],
        "options": [option(left), option(right)],
    }


def completion_url(cfg: ExperimentConfig, participant: Participant) -> Optional[str]:
    """The URL a finished participant follows back to the platform (None for MTurk and anonymous)."""
    return completion(cfg, participant).url


def completion(cfg: ExperimentConfig, participant: Any) -> Completion:
    """``participant``: a ``Participant`` or the hot path's ``ParticipantState``."""
    return completion_for(cfg, participant.external_id, svc.params_of(get_session(), participant),
                          participant.public_id)


def _pilot_allowed() -> bool:
    """Pilot (preview) participants may only be started by a logged-in researcher."""
    from flask_login import current_user

    return bool(getattr(current_user, "is_authenticated", False))


@bp.post("/experiments/<slug>/participants")
def start(slug: str) -> tuple[Response, int]:
    body = _json_body(StartBody)
    if body.pilot and not _pilot_allowed():
        raise Forbidden("pilot: only a logged-in researcher can start pilot participants", code="pilot_forbidden")
    session = get_session()
    begin_read()  # what the start needs to read, outside the write transaction (SQLite: no write lock)
    exp_id = latest_experiment_id(session, slug)
    cfg = _items().config(session, exp_id)
    params = recorded_params(cfg, body.params)
    check_startable(cfg, params)
    external_id = body.external_id or external_id_of(cfg, params)
    refs = _items().refs(session, exp_id)
    end_read(session)
    started = svc.start_participant(session, exp_id, external_id, params,
                                    request.headers.get("User-Agent"), pilot=body.pilot, refs=refs, cfg=cfg)
    payload = {"participant_id": started.participant.public_id, "token": started.token, "resumed": started.resumed}
    if started.restarted:
        payload["restarted"] = True
    return jsonify(payload), (200 if started.resumed else 201)


def _trial_reply(session: Any, participant: svc.ParticipantState, sched: svc.Schedule, state: Optional[svc.TrialState],
                 answered: int) -> dict[str, Any]:
    """What ``GET /trial`` answers: the trial ``state`` (with the images of the one after it to
    preload), or the finished reply with the way back to the recruitment platform."""
    if state is None:
        cfg = _items().config(session, participant.experiment_id)
        return {"trial": None, "finished": True, **completion(cfg, participant).as_json()}
    nxt = sched.after(state)
    items = _items().get_many(session, [state.item_id] + ([nxt.item_id] if nxt else []))
    payload = trial_payload(state, items[state.item_id], participant.experiment_id, sched.total)
    preload: list[str] = []
    if nxt is not None:
        preload = sorted({_image_url(participant.experiment_id, p) for p in items[nxt.item_id].image_paths()})
    return {"trial": payload, "preload": preload, "answered": answered}


def _wants_next() -> bool:
    value = request.args.get("next", "0").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise BadRequest("next: use next=1 to get the next trial in the reply, or leave it out", code="invalid_field")


@bp.get("/trial")
def get_trial() -> Response:
    session = get_session()
    begin_read()  # reads first (SQLite: without the write lock), then one short write
    participant, sched = svc.participant_and_schedule(session, _bearer(), _items())
    state = sched.current()
    reply = _trial_reply(session, participant, sched, state, sched.answered)
    if state is not None:
        participant_id, last_seen = participant.id, participant.last_seen_at
        end_read(session)
        svc.mark_shown(session, participant_id, last_seen, state)
    return jsonify(reply)


@bp.post("/trials/<int:trial_id>/response")
def post_response(trial_id: int) -> Response:
    """Store an answer. With ``?next=1`` the reply also carries, under ``next``, what
    ``GET /trial`` would answer now: one round trip (and one write) per trial instead of two."""
    begin_read()  # record_response reads, ends the read, then writes in one short transaction
    session = get_session()
    serve_next = _wants_next()
    participant, sched = svc.participant_and_schedule(session, _bearer(), _items())
    body = _json_body(ResponseBody)
    cfg = _items().config(session, participant.experiment_id)
    if cfg.confidence_rating and body.confidence is None:
        raise BadRequest("confidence: this experiment asks for a confidence rating (1-7) with every answer",
                         code="invalid_field")
    participant_id, last_seen = participant.id, participant.last_seen_at
    result = svc.record_response(session, participant, trial_id, body.choice, body.rt_ms, body.confidence,
                                 items=_items(), schedule=sched, serve_next=serve_next,
                                 client_time=body.client_time)
    payload: dict[str, Any] = {"stored": True, "duplicate": result.duplicate}
    if result.kind == "practice" and cfg.practice.feedback:
        payload["feedback"] = {"correct": result.correct}
    if serve_next:
        begin_read()  # a cache miss or a refresh reads; SQLite: without the write lock
        payload["next"] = _trial_reply(session, participant, sched, result.next_state, result.answered)
        end_read(session)
        if result.next_state is not None and not result.next_marked:  # a replay: serve like GET /trial
            svc.mark_shown(session, participant_id, last_seen, result.next_state)
    return jsonify(payload)


@bp.post("/events")
def post_event() -> tuple[str, int]:
    participant = _participant()
    body = _json_body(EventBody)
    if len(str(body.data)) > 8000:
        raise BadRequest("data: too large (limit 8000 characters)", code="invalid_field")
    svc.record_event(get_session(), participant, body.type, body.trial_id, body.data)
    return "", 204
