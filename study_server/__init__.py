"""The study server: a Flask application factory with participant, API and admin blueprints."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Optional

from flask import Flask

__all__ = ["create_app", "default_database_url"]


def default_database_url(instance_path: str | Path) -> str:
    return f"sqlite:///{Path(instance_path) / 'interp_study.sqlite'}"


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY from the environment; for a local demo, a random key kept in the instance folder."""
    key = os.environ.get("SECRET_KEY") or os.environ.get("INTERP_STUDY_SECRET_KEY")
    if key:
        return key
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def create_app(test_config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build the app. Configuration comes from the environment or ``test_config``, never import time.

    Environment: ``DATABASE_URL`` (default: SQLite in the instance folder), ``SECRET_KEY``,
    ``INTERP_STUDY_INSTANCE`` (instance folder).
    """
    instance = os.environ.get("INTERP_STUDY_INSTANCE")
    app = Flask(__name__, instance_path=str(Path(instance).resolve()) if instance else None,
                instance_relative_config=True)
    instance_path = Path(app.instance_path)
    app.config.update(
        DATABASE_URL=os.environ.get("DATABASE_URL") or default_database_url(instance_path),
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("INTERP_STUDY_SECURE_COOKIES", "0") == "1",
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
        RATELIMIT_ENABLED=os.environ.get("INTERP_STUDY_RATELIMIT", "1") == "1",
    )
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(instance_path)

    from . import db, http

    db.init_app(app)
    from .services.cache import ItemCache

    app.extensions["item_cache"] = ItemCache()
    http.init_app(app)

    from .api import bp as api_bp
    from .openapi import bp as openapi_bp
    from .pages import bp as pages_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(pages_bp)
    http.csrf.exempt(api_bp)
    try:
        from .admin import init_app as init_admin
    except ImportError:  # the admin blueprint is optional while it is being built
        init_admin = None
    if init_admin is not None:
        init_admin(app)
    return app
