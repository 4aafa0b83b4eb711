"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
apps, the tiny stimulus set, and a real server process on a free port.

Under ``CI=true`` a test that would be skipped for a missing resource (PostgreSQL,
Chromium) fails instead, so CI cannot pass by skipping what it was meant to check.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` when a resource is missing, or fail when CI=true (also at module level)."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a required resource is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stimuli_builder.tiny import build_tiny_set

    return build_tiny_set(tmp_path_factory.mktemp("stimuli") / "tiny")


@pytest.fixture(scope="session")
def demo_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One throwaway demo-world cache per test run, so the small world is trained once."""
    return tmp_path_factory.mktemp("interp-study-cache")


@pytest.fixture
def experiment_file(tmp_path: Path, tiny_set: Path) -> Path:
    from stimuli_builder.tiny import write_tiny_experiment

    return write_tiny_experiment(tmp_path / "exp", tiny_set, trials=6)


def _pg_admin_url() -> tuple[str, object]:
    from sqlalchemy.engine import make_url

    base = os.environ["TEST_DATABASE_URL"]
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1) if base.startswith("postgresql://") else base)
    return url.set(drivername="postgresql").render_as_string(hide_password=False), url


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database used as the template of every test's database."""
    import psycopg

    from study_server.db import upgrade

    require(bool(os.environ.get("TEST_DATABASE_URL")), "PostgreSQL tests need TEST_DATABASE_URL")
    admin, url = _pg_admin_url()
    name = f"isp_tmpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(url.set(database=name).render_as_string(hide_password=False))  # type: ignore[attr-defined]
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for every test (migrating once per run)."""
    from study_server.db import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


def _fresh_sqlite(template: Path, target: Path) -> str:
    import sqlite3

    # a consistent copy through SQLite's backup API (the template is in WAL mode)
    with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, and PostgreSQL when TEST_DATABASE_URL is set.

    Each PostgreSQL test gets its own database, created from a migrated template and dropped
    afterwards.
    """
    if request.param == "sqlite":
        yield _fresh_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path / "test.sqlite")
        return
    require(bool(os.environ.get("TEST_DATABASE_URL")), "PostgreSQL tests need TEST_DATABASE_URL")
    import psycopg

    template = request.getfixturevalue("_pg_template")
    admin, url = _pg_admin_url()
    name = f"isp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    return _fresh_sqlite(_sqlite_template, tmp_path / "test.sqlite")


@pytest.fixture
def app(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from study_server import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                      "REQUEST_LOG": False, "RATELIMIT_ENABLED": False})
    yield app
    app.extensions["db_engine"].dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def registered(app, experiment_file: Path):  # type: ignore[no-untyped-def]
    """The tiny experiment registered in ``app``'s database."""
    from study_server.db import get_session
    from study_server.services.experiments import register_experiment

    with app.app_context():
        return register_experiment(get_session(), experiment_file).experiment


class LiveServer:
    """A real ``interp-study serve`` process on a free localhost port."""

    def __init__(self, database_url: str, instance: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY="live-test-secret",
                   INTERP_STUDY_INSTANCE=str(instance), INTERP_STUDY_RATELIMIT="0")
        instance.mkdir(parents=True, exist_ok=True)
        self.log = open(instance / f"server-{self.port}.log", "w")
        cmd = [sys.executable, "-m", "interp_study.cli", "serve", "--port", str(self.port), "--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log.name}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("server did not come up within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(database_url, tmp_path / "instance")
    yield server
    server.stop()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``interp-study ARGS`` as a real subprocess."""
    return subprocess.run([sys.executable, "-m", "interp_study.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), cwd=ROOT, timeout=300)
