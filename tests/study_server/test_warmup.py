"""Workers warm up at boot: a database connection and the hot statements, reads only."""

from __future__ import annotations

import socket

from sqlalchemy import func, select

from study_server.db import get_session
from study_server.models import Participant, Response, Trial


def test_warm_up_reads_only_and_leaves_the_pool_warm(app, registered) -> None:  # type: ignore[no-untyped-def]
    from study_server.warmup import warm_up

    engine = app.extensions["db_engine"]
    engine.dispose()
    assert engine.pool.checkedin() == 0
    assert warm_up(app) is True
    assert engine.pool.checkedin() == 1  # the worker's connection is open before its first request
    with app.app_context():
        s = get_session()
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Participant, Trial, Response)] == [0, 0, 0]


def test_warm_up_never_stops_a_server_whose_database_is_down() -> None:
    from study_server import create_app
    from study_server.warmup import warm_up

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app({"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{port}/none", "SECRET_KEY": "x",
                      "REQUEST_LOG": False})
    try:
        assert warm_up(app) is False
    finally:
        app.extensions["db_engine"].dispose()
