"""Cross-cutting HTTP concerns: JSON errors, security headers, CSRF, rate limits, input guards,
request logs, health.

Input guards (before any view runs, so no view sees them): JSON bodies must be standard JSON
(no ``NaN``/``Infinity``, no number too large for a float), nest at most 64 deep, and no
string anywhere in the request (path, query, form, JSON) may contain a NUL character, which
PostgreSQL cannot store. ``<int:...>`` URL parts are bounded to the database's integer range,
so a huge id is a 404 rather than an overflow inside the driver.
"""

from __future__ import annotations

import json
import logging
import time

import math
from typing import Any

from markupsafe import escape

import threading

from flask import Flask, Response, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from .errors import ApiError

__all__ = ["init_app", "csrf", "RATE_LIMITS", "limiter_of"]

csrf = CSRFProtect()
log = logging.getLogger("interp_study.requests")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz",)


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


#: endpoint -> (config key holding the limit, default limit, methods it counts). Limits are per
#: client address and, with the default in-memory storage, per gunicorn worker: with N
#: workers a client can get up to N times the limit. Set RATELIMIT_STORAGE_URI (e.g.
#: redis://...) to share counts between workers and hosts. See docs/security.md.
RATE_LIMITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "api.start": ("RATELIMIT_START", "20 per minute;200 per hour", ("POST",)),
    "pages.start": ("RATELIMIT_START", "20 per minute;200 per hour", ("POST",)),
    "pages.landing": ("RATELIMIT_LANDING", "120 per minute", ("GET",)),
    "admin.login": ("RATELIMIT_LOGIN", "5 per minute;30 per hour", ("POST",)),
}

MAX_JSON_DEPTH = 64
MAX_URL_INT = 2**31 - 1  # PostgreSQL INTEGER, the type of every id column


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` limited to 0..2**31-1: a larger number matches no route (404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's signature
        kwargs.setdefault("max", MAX_URL_INT)
        super().__init__(map, *args, **kwargs)


class InputRejected(Exception):
    """A request that no view should see; answered with 400 and ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _no_constant(name: str) -> Any:
    raise InputRejected(f"body: {name} is not valid JSON (use a finite number or null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputRejected(f"body: the number {text[:40]} is out of range")
    return value


def _check_json_value(value: Any, depth: int = 0) -> None:
    """Reject NUL characters and lone surrogates in any key or string, and nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise InputRejected(f"body: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise InputRejected("body: strings may not contain NUL (\\u0000) characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate such as "\ud800": no database can store it
            raise InputRejected("body: strings may not contain unpaired surrogates (\\ud800-\\udfff)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_value(key, depth + 1)
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


def _guard_input() -> None:
    """Raise InputRejected for NUL characters anywhere and for non-standard or too deep JSON."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise InputRejected("the URL may not contain NUL characters")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            if any("\x00" in k or "\x00" in v for k, v in request.form.items(multi=True)):
                raise InputRejected("form fields may not contain NUL characters")
        elif request.is_json:
            raw = request.get_data(cache=True)
            if not raw:
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputRejected("body: not UTF-8") from None
            try:
                data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
            except RecursionError:
                raise InputRejected(f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
            except ValueError:
                return  # malformed JSON: the view answers it (bad_json) as before
            _check_json_value(data)


def limiter_of(app: Flask) -> Limiter:
    """The app's rate limiter (one per app, so test apps never share counts)."""
    return app.extensions["interp_limiter"]  # type: ignore[no-any-return]


def _init_limits(app: Flask) -> None:
    """A Flask-Limiter per app; the limits in RATE_LIMITS wrap their endpoints on the first request.

    Wrapping lazily lets blueprints (the admin one included) register after ``init_app``
    without importing or editing them. ``RATELIMIT_ENABLED = False`` (tests, benchmarks:
    ``INTERP_STUDY_RATELIMIT=0``) turns every limit off.
    """
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter = Limiter(key_func=get_remote_address, default_limits=[])
    limiter.init_app(app)
    app.extensions["interp_limiter"] = limiter
    wrapped: list[bool] = []
    lock = threading.Lock()

    @app.before_request
    def _wrap_limited_endpoints() -> None:
        if wrapped:
            return
        with lock:
            if wrapped:
                return
            for endpoint, (key, default, methods) in RATE_LIMITS.items():
                view = app.view_functions.get(endpoint)
                if view is not None:
                    limit = app.config.get(key) or default
                    # shared: every endpoint with the same config key counts against one budget
                    app.view_functions[endpoint] = limiter.shared_limit(limit, scope=key.lower(),
                                                                        methods=list(methods))(view)
            wrapped.append(True)


def init_app(app: Flask) -> None:
    """Register error handlers, security headers, input guards, CSRF, rate limits and /healthz."""
    app.url_map.converters["int"] = BoundedIntConverter
    csrf.init_app(app)
    _init_limits(app)

    @app.errorhandler(InputRejected)
    def _input_rejected(exc: InputRejected):  # type: ignore[no-untyped-def]
        if _wants_json():
            return _error(400, "invalid_input", exc.message)
        return Response(f"<!doctype html><title>Bad request</title><p>{escape(exc.message)}</p>", status=400,
                        mimetype="text/html")

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return _error(exc.status, exc.code, exc.message)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):  # type: ignore[no-untyped-def]
        if _wants_json():
            return _error(400, "csrf", exc.description)
        return Response(f"<!doctype html><title>Form expired</title><p>{exc.description} "
                        "Go back, reload the page and try again.</p>", status=400)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if _wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            message = exc.description or exc.name
            if exc.code == 413:
                message = "request body too large (limit 64 KiB)"
            resp, status = _error(exc.code or 400, code, message)
            for name, value in exc.get_headers():  # e.g. Allow on a 405 (RFC 9110 requires it)
                if name.lower() != "content-type":
                    resp.headers[name] = value
            return resp, status
        return exc

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError):  # type: ignore[no-untyped-def]
        # e.g. the database restarted and a pooled connection died; SQLAlchemy has
        # invalidated it, so the client's retry gets a fresh connection
        app.logger.warning("database error on %s %s: %s", request.method, request.path, exc.orig)
        if _wants_json():
            return _error(503, "database_unavailable", "the database is briefly unavailable; retry in a moment")
        return Response("<!doctype html><title>Busy</title><p>The study server is briefly unavailable. "
                        "Please reload the page in a moment; your answers so far are saved.</p>", status=503)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return _error(500, "internal", "internal server error")
        return Response("<!doctype html><title>Error</title><p>Something went wrong on our side. "
                        "Please reload the page; your answers so far are saved.</p>", status=500)

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()
        _guard_input()

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        frame_ancestors = g.get("frame_ancestors", "'none'")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
            f"object-src 'none'; base-uri 'none'; form-action 'self' https:; frame-ancestors {frame_ancestors}")
        if frame_ancestors == "'none'":
            resp.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        started = g.get("request_started")
        if started is not None and app.config.get("REQUEST_LOG", True):
            log.info(json.dumps({"method": request.method, "path": request.path, "status": resp.status_code,
                                 "ms": round((time.perf_counter() - started) * 1000, 2)}))
        return resp

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        from .db import get_session

        try:
            get_session().execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - health must answer, not raise
            return _error(503, "database_unavailable", "database unavailable")
        return jsonify({"status": "ok"})
