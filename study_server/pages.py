"""Participant pages: start link, consent, the trial page, the end page, and stimulus images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import markdown as md
from flask import (Blueprint, Response, abort, current_app, g, make_response, redirect, render_template, request,
                   send_from_directory, url_for)

from .config_schema import ExperimentConfig
from .db import get_session
from .errors import ApiError
from .models import Experiment, Item, Participant
from .services import participants as svc
from .services.cache import config_of
from .services.experiments import item_refs, latest_experiment
from .services.recruitment import check_startable, external_id_of, is_mturk_preview, recorded_params
from .services.reloads import page_load
from .services.scheduling import worked_examples

__all__ = ["bp", "set_participant_cookie"]

bp = Blueprint("pages", __name__)


def _md(text: str) -> str:
    return md.markdown(text, extensions=["extra", "sane_lists"])


def _cookie_name(slug: str) -> str:
    return f"isp_{slug}"


def set_participant_cookie(resp: Response, slug: str, token: str) -> Response:
    """The participant's token rides in an HttpOnly cookie scoped to the study's pages."""
    resp.set_cookie(_cookie_name(slug), token, httponly=True, samesite="Lax",
                    secure=current_app.config["SESSION_COOKIE_SECURE"], path=f"/study/{slug}")
    return resp


def _load(slug: str) -> tuple[Experiment, ExperimentConfig]:
    try:
        exp = latest_experiment(get_session(), slug)
    except ApiError:
        abort(404)
    return exp, config_of(exp)


def _allow_framing(cfg: ExperimentConfig) -> None:
    if cfg.recruitment.platform == "mturk":  # MTurk shows external questions in an iframe
        g.frame_ancestors = "https://*.mturk.com"


def _message(exp: Experiment, title: str, body: str, status: int = 200) -> tuple[str, int]:
    return render_template("message.html", exp=exp, title=title, body=body), status


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/study/<slug>")
def landing(slug: str) -> Any:
    """The start link. A GET changes nothing: link-preview crawlers may fetch it freely."""
    exp, cfg = _load(slug)
    _allow_framing(cfg)
    params = recorded_params(cfg, request.args)
    return render_template("landing.html", exp=exp, cfg=cfg, consent=_md(cfg.text.consent), params=params,
                           preview=is_mturk_preview(cfg, params), closed=exp.status != "live")


@bp.post("/study/<slug>/start")
def start(slug: str) -> Any:
    exp, cfg = _load(slug)
    _allow_framing(cfg)
    session = get_session()
    if request.form.get("consent") != "agree":
        svc.decline(session, exp)
        return _message(exp, "You declined",
                        "You chose not to take part. Nothing else was recorded. You can close this page.")
    params = recorded_params(cfg, {k[2:]: v for k, v in request.form.items() if k.startswith("p_")})
    try:
        check_startable(cfg, params)
        started = svc.start_participant(session, exp, external_id_of(cfg, params), params,
                                        request.headers.get("User-Agent"))
    except ApiError as exc:
        return _message(exp, "Cannot start", exc.message, exc.status)
    return set_participant_cookie(redirect(url_for("pages.run", slug=slug), 303), slug, started.token)


def _examples(session: Any, exp: Experiment, cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """Worked examples for the instructions: reserved practice items with the answer shown."""
    refs = worked_examples(cfg, item_refs(session, exp.id))
    out = []
    for ref in refs:
        item = session.get(Item, ref.id)
        media = lambda p: url_for("pages.media", experiment_id=exp.id, filename=p)  # noqa: E731
        out.append({"prompt": item.prompt,
                    "context": [{"label": grp["label"], "images": [media(p) for p in grp["images"]]}
                                for grp in item.context],
                    "options": [{"image": media(o["image"])} if "image" in o else {"text": o["text"]}
                                for o in item.options],
                    "correct": item.correct})
    return out


@bp.get("/study/<slug>/run")
def run(slug: str) -> Any:
    """The trial page; a reload resumes, restarts or ends the participation (``reload_policy``)."""
    latest, _ = _load(slug)
    session = get_session()
    token = request.cookies.get(_cookie_name(slug))
    try:
        participant: Participant = svc.participant_for_token(session, token)
    except ApiError as exc:
        if exc.code == "participation_ended":
            return _message(latest, "This session has ended", exc.message, 410)
        return redirect(url_for("pages.landing", slug=slug))
    exp = participant.experiment  # the version they started, which may be older than the newest
    if exp.slug != slug:
        return redirect(url_for("pages.landing", slug=slug))
    cfg = config_of(exp)
    _allow_framing(cfg)
    loaded = page_load(session, participant, request.headers.get("User-Agent"))
    if loaded.action == "refuse":
        return _message(exp, "This session has ended",
                        "This study cannot be continued after the page is reloaded or left. "
                        "Your answers so far are saved. You can close this page.", 410)
    if loaded.action == "restart" and loaded.started is not None:
        participant, token = loaded.started.participant, loaded.started.token
    answered, total = svc.progress(session, participant)
    resp = make_response(render_template(
        "run.html", exp=exp, cfg=cfg, token=token, answered=answered, total=total,
        instructions=_md(cfg.text.instructions), debrief=_md(cfg.text.debrief),
        examples=_examples(session, exp, cfg), restarted=loaded.action == "restart",
        has_practice=any(t.kind == "practice" for t in participant.trials)))
    resp.headers["Cache-Control"] = "no-store"
    if loaded.action == "restart":
        set_participant_cookie(resp, slug, token)
    return resp


@bp.get("/media/<int:experiment_id>/<path:filename>")
def media(experiment_id: int, filename: str) -> Response:
    """Stimulus images, content-hash named, served with immutable cache headers.

    Only files under the set's ``images/`` folder are served (never the manifest, which
    holds the answers); ``send_from_directory`` refuses paths that leave the folder.
    """
    if not filename.startswith("images/") or not filename.endswith(".png") or ".." in filename:
        abort(404)
    exp = get_session().get(Experiment, experiment_id)
    if exp is None:
        abort(404)
    folder = Path(exp.stimuli_path)
    resp = send_from_directory(folder, filename, max_age=31536000)
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp
