"""Engine, sessions and schema upgrades.

SQLite (the default) runs in WAL mode with ``synchronous=FULL`` so that a committed
response survives a crash of the process or the machine; PostgreSQL is used through
``DATABASE_URL`` with one transaction per request.

SQLite allows one writer at a time. Every transaction starts with ``BEGIN IMMEDIATE`` so a
read-then-write transaction never fails half way; writers wait for each other. SQLite's own
busy handler waits by sleeping (1, 2, 5, 10, ... 100 ms) and retrying, which under load
can leave the database idle while waiters sleep. With ``INTERP_STUDY_SQLITE_WRITER_LOCK=1``
(opt-in, experimental) a connection also takes an exclusive ``flock`` on
``<database>.writelock`` before ``BEGIN IMMEDIATE``: the kernel wakes the next waiter the
moment the lock is released, and drops it if the process dies. Connections that do not take
the lock (another tool on the same file) still work through the busy timeout. See
``docs/durability.md``.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Optional

from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "init_app", "get_session", "upgrade", "current_revision", "normalize_url",
           "MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class _WriterLock:
    """An exclusive ``flock`` on a file beside the database, one open file per connection.

    ``flock`` locks belong to an open file, so two connections of the same process exclude
    each other like two processes do. A thread that already holds the lock through another
    connection (a nested session) does not take it again, which would deadlock; that
    connection falls back on SQLite's busy timeout exactly as without this lock.
    """

    _holders: dict[int, int] = {}  # thread id -> locks it holds
    _guard = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: Optional[int] = None
        self.owner: Optional[int] = None

    def acquire(self) -> None:
        """Block until this connection is the only writer (no-op if held, or nested in this thread)."""
        me = threading.get_ident()
        if self.owner is not None or self._holders.get(me, 0) > 0:
            return
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        with self._guard:
            self.owner = me
            self._holders[me] = self._holders.get(me, 0) + 1

    def release(self) -> None:
        """Let the next writer in (no-op when not held)."""
        if self.owner is None or self.fd is None:
            return
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        with self._guard:
            left = self._holders.get(self.owner, 1) - 1
            if left > 0:
                self._holders[self.owner] = left
            else:
                self._holders.pop(self.owner, None)
            self.owner = None

    def close(self) -> None:
        """Release and close the lock file."""
        self.release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _record_lock(record: Any) -> Optional[_WriterLock]:
    return record.info.get("writer_lock") if record is not None else None  # type: ignore[no-any-return]


def _pool_release(_dbapi_conn: Any, record: Any, *_args: Any) -> None:
    lock = _record_lock(record)
    if lock is not None:
        lock.release()


def _pool_close(_dbapi_conn: Any, record: Any, *_args: Any) -> None:
    lock = _record_lock(record)
    if lock is not None:
        lock.close()
        record.info.pop("writer_lock", None)


def _sqlite_path(url: str) -> Optional[str]:
    """The database file of a SQLite URL, or None for an in-memory database."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL, a busy timeout, foreign keys and a writer queue."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        # opt-in (INTERP_STUDY_SQLITE_WRITER_LOCK=1): on the shared 2-core test machine it showed no
        # clear throughput gain (bench/load.py), and a blocking flock has no timeout
        queue = os.environ.get("INTERP_STUDY_SQLITE_WRITER_LOCK", "0") == "1"
        lock_path = f"{path}.writelock" if path and queue else None

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy/pysqlite not start transactions implicitly; we issue BEGIN ourselves
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            if lock_path:
                old = _record.info.pop("writer_lock", None)
                if old is not None:
                    old.close()
                _record.info["writer_lock"] = _WriterLock(lock_path)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock at the start, so read-then-write transactions
            # (assignment, responses) are serialized instead of failing with SQLITE_BUSY.
            # The flock before it queues writers without SQLite's sleep-and-retry.
            lock = _record_lock(getattr(conn.connection, "_connection_record", None))
            if lock is not None:
                lock.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if lock is not None:
                    lock.release()
                raise

        # The flock is released when the connection goes back to the pool (after the
        # session's COMMIT or ROLLBACK has run), or is invalidated or closed.
        event.listen(engine.pool, "checkin", _pool_release)
        event.listen(engine.pool, "invalidate", _pool_release)
        event.listen(engine.pool, "soft_invalidate", _pool_release)
        event.listen(engine.pool, "close", _pool_close)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def init_app(app: Flask) -> None:
    """Attach an engine and a sessionmaker to ``app`` and close sessions after requests."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def get_session() -> Session:
    """The request's session (one per request, closed at teardown)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (creating the database if needed)."""
    make_engine(url).dispose()  # creates the SQLite folder
    command.upgrade(_alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
