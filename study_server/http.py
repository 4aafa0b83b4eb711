"""Cross-cutting HTTP concerns: JSON errors, security headers, CSRF, request logs, health."""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Response, g, jsonify, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .errors import ApiError

__all__ = ["init_app", "csrf"]

csrf = CSRFProtect()
log = logging.getLogger("interp_study.requests")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz",)


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def init_app(app: Flask) -> None:
    csrf.init_app(app)

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
            return _error(exc.code or 400, code, message)
        return exc

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
