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
from .models import Experiment
from .services import participants as svc
from .services.experiments import latest_experiment

__all__ = ["bp"]

bp = Blueprint("pages", __name__)

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


def _md(text: str) -> str:
    return md.markdown(text, extensions=["extra", "sane_lists"])


def _cookie_name(slug: str) -> str:
    return f"isp_{slug}"


def _load(slug: str) -> tuple[Experiment, ExperimentConfig]:
    try:
        exp = latest_experiment(get_session(), slug)
    except ApiError:
        abort(404)
    return exp, ExperimentConfig.model_validate(exp.config)


def _allow_framing(cfg: ExperimentConfig) -> None:
    if cfg.recruitment.platform == "mturk":  # MTurk shows external questions in an iframe
        g.frame_ancestors = "https://*.mturk.com"


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/study/<slug>")
def landing(slug: str) -> Any:
    """The start link. A GET changes nothing: link-preview crawlers may fetch it freely."""
    exp, cfg = _load(slug)
    _allow_framing(cfg)
    params = {k: v for k, v in request.args.items() if k in cfg.recruitment.params_to_record()}
    preview = cfg.recruitment.platform == "mturk" and request.args.get("assignmentId") == MTURK_PREVIEW
    return render_template("landing.html", exp=exp, cfg=cfg, consent=_md(cfg.text.consent), params=params,
                           preview=preview, closed=exp.status != "live")


@bp.post("/study/<slug>/start")
def start(slug: str) -> Any:
    exp, cfg = _load(slug)
    _allow_framing(cfg)
    session = get_session()
    if request.form.get("consent") != "agree":
        svc.decline(session, exp)
        return render_template("message.html", exp=exp, title="You declined",
                               body="You chose not to take part. Nothing else was recorded. You can close this page.")
    allowed = cfg.recruitment.params_to_record()
    params = {k[2:]: v[:200] for k, v in request.form.items() if k.startswith("p_") and k[2:] in allowed}
    id_param = cfg.recruitment.external_id_param()
    external_id = params.get(id_param) if id_param else None
    if cfg.recruitment.platform == "mturk" and params.get("assignmentId") == MTURK_PREVIEW:
        abort(400)
    try:
        started = svc.start_participant(session, exp, external_id, params, request.headers.get("User-Agent"))
    except ApiError as exc:
        return render_template("message.html", exp=exp, title="Cannot start", body=exc.message), exc.status
    resp = redirect(url_for("pages.run", slug=slug))
    resp.set_cookie(_cookie_name(slug), started.token, httponly=True, samesite="Lax",
                    secure=current_app.config["SESSION_COOKIE_SECURE"], path=f"/study/{slug}")
    return resp


@bp.get("/study/<slug>/run")
def run(slug: str) -> Any:
    """The trial page; a reload resumes at the current trial."""
    exp, cfg = _load(slug)
    _allow_framing(cfg)
    token = request.cookies.get(_cookie_name(slug))
    try:
        participant = svc.participant_for_token(get_session(), token)
    except ApiError:
        return redirect(url_for("pages.landing", slug=slug))
    if participant.experiment.slug != slug:
        return redirect(url_for("pages.landing", slug=slug))
    answered, total = svc.progress(get_session(), participant)
    resp = make_response(render_template(
        "run.html", exp=exp, cfg=cfg, token=token, answered=answered, total=total,
        instructions=_md(cfg.text.instructions), debrief=_md(cfg.text.debrief)))
    resp.headers["Cache-Control"] = "no-store"
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
