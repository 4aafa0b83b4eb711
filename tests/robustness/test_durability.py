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
