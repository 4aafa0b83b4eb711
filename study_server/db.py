"""Engine, sessions and schema upgrades.

SQLite (the default) runs in WAL mode. Its ``synchronous`` level is NORMAL unless
``INTERP_STUDY_SQLITE_SYNCHRONOUS`` says FULL or EXTRA: in WAL mode NORMAL keeps every
committed transaction across a crash of the server process (SIGKILL; tested), but a power
loss or kernel crash may roll back the last transactions; FULL syncs the disk at every
commit and keeps them across power loss too, at one fsync per commit (about 3.5 ms on this
project's test machine, so at most ~270 commits/s with SQLite's single writer). See
``docs/durability.md``. PostgreSQL is used through ``DATABASE_URL`` with one transaction
per request.

SQLite allows one writer at a time. Every transaction starts with ``BEGIN IMMEDIATE`` so a
read-then-write transaction never fails half way; writers wait for each other. They wait in
a queue: before ``BEGIN IMMEDIATE`` a connection takes an exclusive ``flock`` on
``<database>-writer.lock`` (all processes, all threads) and drops it at commit or rollback.
SQLite's own busy handler polls with sleeps of up to 100 ms, which made a busy moment's
waits long and uneven; a blocked ``flock`` wakes as soon as the writer before it is done.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app, g
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "init_app", "get_session", "upgrade", "current_revision", "normalize_url",
           "MIGRATIONS_DIR", "sqlite_synchronous", "begin_read", "end_read"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_path(url: str) -> Optional[str]:
    """The database file of a SQLite URL, or None for an in-memory database."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return path


_HELD = threading.local()  # lock files whose flock this thread holds (through any connection)


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions queue on a ``flock`` (see the module doc).

    ``acquire_writer()`` is called right before ``BEGIN IMMEDIATE``; ``commit``, ``rollback``
    and ``close`` release. A thread that already holds the lock through another connection
    does not queue again (it would wait for itself); SQLite's busy timeout covers that case.
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else ""
        if name.startswith("file:"):
            name = name[5:].split("?", 1)[0]
        memory = not name or name == ":memory:" or "mode=memory" in str(database)
        self._lock_path = None if memory else os.path.abspath(name) + "-writer.lock"
        self._lock_fd: Optional[int] = None
        self._holding = False

    def acquire_writer(self) -> None:
        if self._lock_path is None or self._holding:
            return
        held: set[str] = getattr(_HELD, "paths", None) or set()
        _HELD.paths = held
        if self._lock_path in held:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._holding = True
        held.add(self._lock_path)

    def release_writer(self) -> None:
        if self._holding and self._lock_fd is not None:
            self._holding = False
            getattr(_HELD, "paths", set()).discard(self._lock_path)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")
_NEXT_BEGIN_READ: ContextVar[bool] = ContextVar("interp_study_next_begin_read", default=False)


def begin_read() -> None:
    """Make the next transaction of this thread a read-only one (SQLite: ``BEGIN DEFERRED``).

    The caller must not write in it: end it (commit or rollback) before writing, and the
    next transaction is ``BEGIN IMMEDIATE`` again. On PostgreSQL this changes nothing.
    """
    _NEXT_BEGIN_READ.set(True)


def end_read(session: Session) -> None:
    """End the read transaction begun after ``begin_read()`` before writing.

    On SQLite this releases nothing held but lets the write take ``BEGIN IMMEDIATE``; on
    PostgreSQL (no global write lock) the read and the write share one transaction, which
    saves two round trips.
    """
    _NEXT_BEGIN_READ.set(False)  # a read announced but never begun ends here too
    if session.get_bind().dialect.name == "sqlite":
        session.rollback()


def sqlite_synchronous() -> str:
    """SQLite's ``synchronous`` level: ``INTERP_STUDY_SQLITE_SYNCHRONOUS`` (default NORMAL)."""
    level = os.environ.get("INTERP_STUDY_SQLITE_SYNCHRONOUS", "NORMAL").strip().upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"INTERP_STUDY_SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_LEVELS)}, "
                         f"not '{level}'")
    return level


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, its synchronous level, a busy timeout and foreign keys."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False,
                                                  "factory": QueuedWriterConnection}, **kwargs)
        synchronous = sqlite_synchronous()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy/pysqlite not start transactions implicitly; we issue BEGIN ourselves
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock at the start, so read-then-write transactions
            # (assignment, responses) are serialized instead of failing with SQLITE_BUSY.
            # A transaction announced with begin_read() is DEFERRED: a WAL reader that
            # neither waits for nor blocks the writer.
            if _NEXT_BEGIN_READ.get():
                _NEXT_BEGIN_READ.set(False)
                conn.exec_driver_sql("BEGIN")
            else:
                dbapi_conn = conn.connection.dbapi_connection
                if isinstance(dbapi_conn, QueuedWriterConnection):
                    dbapi_conn.acquire_writer()
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    if isinstance(dbapi_conn, QueuedWriterConnection):
                        dbapi_conn.release_writer()
                    raise

        return engine
    # A ping at every pool checkout costs a round trip per transaction; stale connections are
    # recycled instead (and a request that meets a dead one gets a 503, see http.py).
    kwargs.setdefault("pool_pre_ping", os.environ.get("INTERP_STUDY_DB_PRE_PING", "0") == "1")
    kwargs.setdefault("pool_recycle", 1800)
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
        _NEXT_BEGIN_READ.set(False)  # never leak a read-only announcement into the next request
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
