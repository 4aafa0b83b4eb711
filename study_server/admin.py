"""Researcher admin pages under ``/admin``: login, experiments and versions, upload, preview,
live progress, pause/close, export, participant detail.

Logins use Flask-Login with werkzeug password hashes (``interp-study admin create-user``);
every form carries a CSRF token (Flask-WTF's ``CSRFProtect`` is global); the session cookie
is HttpOnly and SameSite=Lax (``create_app``). Handlers parse the request and call services.
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, send_file,
                   session, url_for)
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash

from .config_schema import ConfigError
from .db import get_session
from .errors import ApiError
from .models import Event, Experiment, Participant, User
from .pages import set_participant_cookie
from .services import participants as svc
from .services.cache import config_of
from .services.exclusions import exclusion_reasons
from .services.experiments import STATUSES, register_upload, set_status
from .services.export import export_frame
from .services.progress import experiment_progress, participant_outcomes

__all__ = ["bp", "init_app", "login_manager"]

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.login_message = "Please log in to see the admin pages."
login_manager.session_protection = "strong"


class AdminUser(UserMixin):
    """The logged-in researcher (a detached view of a ``User`` row)."""

    def __init__(self, user: User) -> None:
        self.id = str(user.id)
        self.username = user.username


@login_manager.user_loader
def _load_user(user_id: str) -> Optional[AdminUser]:
    if not user_id.isdigit():
        return None
    user = get_session().get(User, int(user_id))
    return AdminUser(user) if user is not None else None


def init_app(app: Flask) -> None:
    """Register the admin blueprint and the login manager on ``app``."""
    app.config.setdefault("STIMULI_ROOT", os.environ.get("INTERP_STUDY_STIMULI_ROOT") or None)
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    login_manager.init_app(app)
    app.register_blueprint(bp)


def _safe_next(target: Optional[str]) -> str:
    """Only same-site relative paths, so the login form is no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


def _experiment(experiment_id: int) -> Experiment:
    exp = get_session().get(Experiment, experiment_id)
    if exp is None:
        abort(404)
    return exp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = get_session().scalars(select(User).where(User.username == username)).first()
        if user is not None and check_password_hash(user.password_hash, password):
            session.clear()  # no session fixation: a fresh session for the logged-in user
            login_user(AdminUser(user))
            return redirect(_safe_next(request.args.get("next")))
        error = "Unknown user name or wrong password."
    status = 401 if error else 200
    return render_template("admin/login.html", error=error), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def index() -> str:
    exps = list(get_session().scalars(select(Experiment).order_by(Experiment.slug, Experiment.version.desc())))
    grouped: dict[str, list[Experiment]] = {}
    for exp in exps:
        grouped.setdefault(exp.slug, []).append(exp)
    return render_template("admin/index.html", grouped=grouped)


@bp.route("/experiments/new", methods=["GET", "POST"])
@login_required
def new_experiment() -> Any:
    errors: list[tuple[str, str]] = []
    text = ""
    if request.method == "POST":
        upload = request.files.get("config")
        filename = "upload.yaml"
        if upload is not None and upload.filename:
            filename = upload.filename
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                errors = [("(file)", "not UTF-8 text")]
        else:
            text = request.form.get("yaml", "")
        if not errors and not text.strip():
            errors = [("(file)", "choose a YAML file or paste the experiment")]
        if not errors:
            try:
                reg = register_upload(get_session(), text, filename, current_app.config.get("STIMULI_ROOT"))
            except ConfigError as exc:
                errors = exc.fields or [("(file)", str(exc))]
            else:
                what = "Registered" if reg.created else "Unchanged: already registered as"
                flash(f"{what} {reg.experiment.slug} version {reg.experiment.version}.")
                return redirect(url_for("admin.experiment", experiment_id=reg.experiment.id))
    status = 400 if errors else 200
    return render_template("admin/new.html", errors=errors, text=text,
                           stimuli_root=current_app.config.get("STIMULI_ROOT")), status


@bp.get("/experiments/<int:experiment_id>")
@login_required
def experiment(experiment_id: int) -> str:
    exp = _experiment(experiment_id)
    include_pilot = request.args.get("pilot") == "1"
    cfg = config_of(exp)
    svc.refresh_timeouts(get_session(), exp)  # count participants who walked away as timed out
    people = list(get_session().scalars(select(Participant).where(Participant.experiment_id == exp.id)
                                        .order_by(Participant.ordinal.desc()).limit(200)))
    return render_template("admin/experiment.html", exp=exp, cfg=cfg, statuses=STATUSES,
                           progress=experiment_progress(get_session(), exp, include_pilot),
                           include_pilot=include_pilot, people=people)


@bp.post("/experiments/<int:experiment_id>/status")
@login_required
def change_status(experiment_id: int) -> Any:
    exp = _experiment(experiment_id)
    try:
        set_status(get_session(), exp, request.form.get("status", ""))
    except ConfigError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.experiment", experiment_id=exp.id), 303)
    flash(f"{exp.slug} version {exp.version} is now {exp.status}.")
    return redirect(url_for("admin.experiment", experiment_id=exp.id), 303)


@bp.post("/experiments/<int:experiment_id>/preview")
@login_required
def preview(experiment_id: int) -> Any:
    """Take the study as a pilot participant (kept out of balance counts and default exports)."""
    exp = _experiment(experiment_id)
    try:
        started = svc.start_participant(get_session(), exp, None, {"preview_by": current_user.username},
                                        request.headers.get("User-Agent"), pilot=True)
    except ApiError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.experiment", experiment_id=exp.id), 303)
    resp = redirect(url_for("pages.run", slug=exp.slug), 303)
    return set_participant_cookie(resp, exp.slug, started.token)


@bp.get("/experiments/<int:experiment_id>/export.<fmt>")
@login_required
def export(experiment_id: int, fmt: str) -> Any:
    if fmt not in ("csv", "parquet"):
        abort(404)
    exp = _experiment(experiment_id)
    frame = export_frame(get_session(), [exp], include_pilot=request.args.get("pilot") == "1")
    buf = io.BytesIO()
    if fmt == "csv":
        buf.write(frame.to_csv(index=False).encode("utf-8"))
        mimetype = "text/csv"
    else:
        frame.to_parquet(buf, index=False)
        mimetype = "application/vnd.apache.parquet"
    buf.seek(0)
    return send_file(buf, mimetype=mimetype, as_attachment=True,
                     download_name=f"{exp.slug}-v{exp.version}.{fmt}", max_age=0)


@bp.get("/participants/<public_id>")
@login_required
def participant(public_id: str) -> str:
    s = get_session()
    p = s.scalars(select(Participant).where(Participant.public_id == public_id)).first()
    if p is None:
        abort(404)
    cfg = config_of(p.experiment)
    reasons = exclusion_reasons(cfg, p.status, participant_outcomes(s, [p.id])[p.id])
    events = list(s.scalars(select(Event).where(Event.participant_id == p.id).order_by(Event.id).limit(500)))
    return render_template("admin/participant.html", p=p, exp=p.experiment, trials=p.trials, reasons=reasons,
                           events=events)
