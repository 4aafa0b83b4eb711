"""Warm a server process up before it takes requests.

A fresh gunicorn worker would otherwise pay, inside its first requests, for opening its
database connection (SQLite's pragmas, PostgreSQL's dialect set-up) and for compiling the
hot path's prepared statements: 50-170 ms on this project's test machine, felt by the first
participants of a burst. ``warm_up`` does that work at boot with reads that match nothing.
"""

from __future__ import annotations

import logging

from flask import Flask

__all__ = ["warm_up"]

log = logging.getLogger(__name__)


def warm_up(app: Flask) -> bool:
    """Open a database connection and compile the hot statements; False (logged) if that failed.

    Only reads, matching no row; a database that is down is reported by ``/healthz`` and by
    the requests themselves, so a failure here never stops the process from starting.
    """
    from .db import get_session
    from .services.experiments import _LATEST_ID
    from .services.participants import _CORRECT_OF, _HOT_QUERY

    try:
        with app.app_context():
            session = get_session()
            try:
                session.execute(_HOT_QUERY, {"token_hash": "-"}).all()
                session.execute(_LATEST_ID, {"slug": "-"}).all()
                session.execute(_CORRECT_OF, {"trial_id": -1}).all()
            finally:
                session.rollback()
        return True
    except Exception as exc:  # noqa: BLE001 - warming up is an optimisation, never a reason to fail
        log.warning("warm-up skipped: %s: %s", type(exc).__name__, exc)
        return False
