"""Durability settings, read back from live connections (docs/durability.md)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from .conftest import auth, current, start


@pytest.mark.parametrize("env, level", [(None, 1), ("FULL", 2), ("extra", 3)])  # 1 NORMAL, 2 FULL, 3 EXTRA
def test_sqlite_runs_in_wal_with_its_synchronous_level(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                       env: str | None, level: int) -> None:
    from study_server.db import make_engine

    if env is None:
        monkeypatch.delenv("INTERP_STUDY_SQLITE_SYNCHRONOUS", raising=False)
    else:
        monkeypatch.setenv("INTERP_STUDY_SQLITE_SYNCHRONOUS", env)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            conn.rollback()
    finally:
        engine.dispose()


def test_sqlite_synchronous_off_is_refused(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from study_server.db import make_engine

    monkeypatch.setenv("INTERP_STUDY_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ValueError, match="INTERP_STUDY_SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, EXTRA"):
        make_engine(sqlite_url)


def test_sqlite_wal_persists_in_the_file(sqlite_url: str) -> None:
    """WAL is a property of the database file: a plain sqlite3 connection sees it too."""
    import sqlite3

    path = sqlite_url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_writes_begin_immediate_reads_deferred(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """Every transaction that writes starts with BEGIN IMMEDIATE (it holds the write lock from
    its first statement, so it never fails half way); the hot path's reads run in a plain
    (deferred) BEGIN that writes nothing and so never waits for the writer."""
    statements: list[str] = []
    engine = app.extensions["db_engine"]

    def _log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(engine, "before_cursor_execute", _log)
    try:
        token = start(client)["token"]
        trial = current(client, token)["trial"]
        client.post(f"/api/v1/trials/{trial['id']}/response", json={"choice": 0, "rt_ms": 5}, headers=auth(token))
        current(client, token)
    finally:
        event.remove(engine, "before_cursor_execute", _log)
    transactions: list[list[str]] = []
    for st in statements:
        if st.startswith("BEGIN"):
            transactions.append([st])
        elif transactions:
            transactions[-1].append(st)
    writes = ("INSERT", "UPDATE", "DELETE")
    writing = [t for t in transactions if any(x.startswith(writes) for x in t[1:])]
    reading = [t for t in transactions if t not in writing]
    assert writing and reading
    assert all(t[0] == "BEGIN IMMEDIATE" for t in writing), [t[0] for t in writing]
    assert any(t[0] == "BEGIN" for t in reading)
    assert any(any(x.startswith("INSERT INTO RESPONSE") for x in t) for t in writing)


def _transactions_during(app: Any, client: Any, call: Any) -> list[list[str]]:
    """The statements of each transaction the app's engine ran during ``call()``."""
    engine = app.extensions["db_engine"]
    txs: list[list[str]] = []
    current_tx: list[str] = []

    def _begin(conn: Any) -> None:
        current_tx.clear()

    def _stmt(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        word = statement.split()[0].upper()
        if word not in ("BEGIN",):
            current_tx.append(word)

    def _commit(conn: Any) -> None:
        txs.append(list(current_tx))
        current_tx.clear()

    event.listen(engine, "begin", _begin)
    event.listen(engine, "before_cursor_execute", _stmt)
    event.listen(engine, "commit", _commit)
    try:
        call()
    finally:
        event.remove(engine, "begin", _begin)
        event.remove(engine, "before_cursor_execute", _stmt)
        event.remove(engine, "commit", _commit)
    return txs


def test_one_transaction_per_response(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """A stored response is one COMMIT holding the response row and its participant update."""
    token = start(client)["token"]
    trial = current(client, token)["trial"]
    resp_holder: list[Any] = []
    txs = _transactions_during(app, client, lambda: resp_holder.append(client.post(
        f"/api/v1/trials/{trial['id']}/response", json={"choice": 1, "rt_ms": 5}, headers=auth(token))))
    assert resp_holder[0].status_code == 200
    assert len(txs) == 1, txs
    assert txs[0].count("INSERT") == 1 and "UPDATE" in txs[0]
    # a replay and a refused response commit nothing
    txs = _transactions_during(app, client, lambda: client.post(
        f"/api/v1/trials/{trial['id']}/response", json={"choice": 0, "rt_ms": 5}, headers=auth(token)))
    assert txs == []
    txs = _transactions_during(app, client, lambda: client.post(
        f"/api/v1/trials/{trial['id'] + 5}/response", json={"choice": 0, "rt_ms": 5}, headers=auth(token)))
    assert txs == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_commits_are_durable(database_url: str) -> None:
    """PostgreSQL: fsync on and synchronous_commit on, so a 2xx means the WAL is on disk."""
    from study_server.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW fsync")).scalar() == "on"
            assert conn.execute(text("SHOW synchronous_commit")).scalar() in ("on", "remote_write", "remote_apply")
            assert conn.execute(text("SHOW default_transaction_isolation")).scalar() == "read committed"
            conn.rollback()
    finally:
        engine.dispose()


def test_one_transaction_per_response_with_the_next_trial(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """With ``?next=1`` the answer, the participant update and the next trial's ``shown_at``
    are still one COMMIT (and nothing else is written)."""
    token = start(client)["token"]
    trial = current(client, token)["trial"]
    replies: list[Any] = []
    txs = _transactions_during(app, client, lambda: replies.append(client.post(
        f"/api/v1/trials/{trial['id']}/response?next=1", json={"choice": 1, "rt_ms": 5}, headers=auth(token))))
    assert replies[0].status_code == 200 and replies[0].get_json()["next"]["trial"]["position"] == 2
    assert len(txs) == 1, txs
    assert txs[0].count("INSERT") == 1 and txs[0].count("UPDATE") == 2


def _flock_free(path: str) -> bool:
    """Whether nobody holds the writer lock file (tried from a fresh file description)."""
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return True


def test_sqlite_writers_queue_on_the_writer_lock(sqlite_url: str) -> None:
    """A write transaction holds ``<db>-writer.lock`` from BEGIN IMMEDIATE to commit or
    rollback, so other processes' writers wait on the lock (and wake when it is released)
    instead of polling SQLite's busy handler; reads never take it."""
    import threading

    from study_server.db import make_engine

    lock_path = sqlite_url.split("///", 1)[1] + "-writer.lock"
    one, two = make_engine(sqlite_url), make_engine(sqlite_url)  # like two gunicorn workers
    try:
        with one.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS queue_probe (n INTEGER)")
            conn.commit()
        assert _flock_free(lock_path)
        order: list[str] = []
        with one.connect() as a:
            a.begin()
            a.exec_driver_sql("INSERT INTO queue_probe VALUES (1)")
            assert not _flock_free(lock_path)  # held while the transaction is open

            def writer_b() -> None:
                with two.connect() as b:
                    b.begin()  # waits on the flock until ``a`` commits
                    order.append("b began")
                    b.exec_driver_sql("INSERT INTO queue_probe VALUES (2)")
                    b.commit()

            thread = threading.Thread(target=writer_b)
            thread.start()
            thread.join(0.3)
            assert thread.is_alive() and order == []  # still queued behind ``a``
            order.append("a commits")
            a.commit()
            thread.join(10)
            assert not thread.is_alive()
        assert order == ["a commits", "b began"]
        assert _flock_free(lock_path)
        with one.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT n FROM queue_probe ORDER BY n")] == [1, 2]
            conn.rollback()
        # a rollback releases the lock too
        with one.connect() as a:
            a.begin()
            a.exec_driver_sql("INSERT INTO queue_probe VALUES (3)")
            a.rollback()
        assert _flock_free(lock_path)
    finally:
        one.dispose()
        two.dispose()


def test_sqlite_writer_lock_never_waits_for_its_own_thread(sqlite_url: str) -> None:
    """A thread writing through a second connection while its first holds the write
    transaction does not queue for a lock it holds itself: SQLite's busy timeout answers."""
    from sqlalchemy.exc import OperationalError

    from study_server.db import make_engine

    one, two = make_engine(sqlite_url), make_engine(sqlite_url)
    try:
        with one.connect() as a, two.connect() as b:
            a.exec_driver_sql("CREATE TABLE IF NOT EXISTS self_probe (n INTEGER)")
            a.commit()
            b.exec_driver_sql("PRAGMA busy_timeout=50")
            b.rollback()
            a.begin()
            a.exec_driver_sql("INSERT INTO self_probe VALUES (1)")
            with pytest.raises(OperationalError, match="locked"):
                b.begin()
            b.rollback()
            a.commit()
    finally:
        one.dispose()
        two.dispose()
