"""Console commands of the study server (registered by ``interp_study.cli``)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Optional

import click

__all__ = ["serve", "db", "experiment", "export", "admin"]

DB_OPTION = click.option("--database-url", envvar="DATABASE_URL", default=None,
                         help="SQLAlchemy URL [env: DATABASE_URL; default: SQLite in the instance folder]")


def _app(database_url: Optional[str]):  # type: ignore[no-untyped-def]
    from . import create_app

    config = {"DATABASE_URL": database_url} if database_url else None
    return create_app(config)


def _upgrade(app) -> None:  # type: ignore[no-untyped-def]
    from .db import upgrade

    try:
        upgrade(app.config["DATABASE_URL"])
    except Exception as exc:  # noqa: BLE001 - a connection problem is a user problem here
        raise click.ClickException(f"could not open or upgrade the database "
                                   f"{_redact(app.config['DATABASE_URL'])}: {exc}") from None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparseable URL>"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn workers; 1 runs the Flask (werkzeug) server, as for the demo")
@click.option("--production/--dev", default=None,
              help="force gunicorn (--production) or the Flask server (--dev); default: gunicorn when --workers > 1")
@DB_OPTION
def serve(host: str, port: int, workers: int, production: Optional[bool], database_url: Optional[str]) -> None:
    """Start the study server on the configured database (upgrading the schema first)."""
    app = _app(database_url)
    _upgrade(app)
    use_gunicorn = production if production is not None else workers > 1
    click.echo(f"interp-study: database {_redact(app.config['DATABASE_URL'])}; serving on http://{host}:{port}/",
               err=True)
    if use_gunicorn:
        env = dict(os.environ, DATABASE_URL=app.config["DATABASE_URL"], INTERP_STUDY_INSTANCE=app.instance_path)
        env.setdefault("SECRET_KEY", app.config["SECRET_KEY"])
        cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{host}:{port}",
               "--access-logfile", "-", "--access-logformat",
               '{"remote":"%(h)s","request":"%(r)s","status":%(s)s,"bytes":%(B)s,"ms":%(M)s}',
               "--graceful-timeout", "10", "study_server.wsgi:app"]
        os.execvpe(cmd[0], cmd, env)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@DB_OPTION
def db_upgrade(revision: str, database_url: Optional[str]) -> None:
    """Apply Alembic migrations."""
    from .db import current_revision, upgrade

    app = _app(database_url)
    url = app.config["DATABASE_URL"]
    try:
        upgrade(url, revision)
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"upgrade of {_redact(url)} failed: {exc}") from None
    click.echo(f"database {_redact(url)} at revision {current_revision(url)}")


@click.group()
def experiment() -> None:
    """Register and list experiments."""


@experiment.command("create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@DB_OPTION
def experiment_create(file: Path, database_url: Optional[str]) -> None:
    """Validate FILE (experiment YAML) and register it as a new version; prints the slug."""
    from .config_schema import ConfigError
    from .services.experiments import register_experiment

    app = _app(database_url)
    _upgrade(app)
    with app.app_context():
        from .db import get_session

        try:
            reg = register_experiment(get_session(), file)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        exp = reg.experiment
        what = "registered" if reg.created else "unchanged, already registered as"
        click.echo(f"{what} {exp.slug} version {exp.version} ({len(exp.items)} items)", err=True)
        click.echo(exp.slug)


@experiment.command("list")
@DB_OPTION
def experiment_list(database_url: Optional[str]) -> None:
    """List experiments and their versions."""
    from sqlalchemy import select

    from .models import Experiment

    app = _app(database_url)
    _upgrade(app)
    with app.app_context():
        from .db import get_session

        rows = get_session().scalars(select(Experiment).order_by(Experiment.slug, Experiment.version)).all()
        for exp in rows:
            click.echo(f"{exp.slug}\tv{exp.version}\t{exp.status}\t{exp.n_participants} started\t{exp.title}")


@click.command()
@click.argument("slug")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="output file ending in .csv or .parquet")
@click.option("--version", "version", type=int, default=None, help="one version (default: all versions)")
@click.option("--include-pilot", is_flag=True, help="include preview/pilot participants")
@DB_OPTION
def export(slug: str, out: Path, version: Optional[int], include_pilot: bool, database_url: Optional[str]) -> None:
    """Export one row per trial of experiment SLUG as CSV or Parquet."""
    from sqlalchemy import select

    from .models import Experiment
    from .services.export import export_frame, write_export

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.ClickException(f"--out {out}: the file must end in .csv or .parquet")
    app = _app(database_url)
    _upgrade(app)
    with app.app_context():
        from .db import get_session

        session = get_session()
        query = select(Experiment).where(Experiment.slug == slug).order_by(Experiment.version)
        if version is not None:
            query = query.where(Experiment.version == version)
        exps = list(session.scalars(query))
        if not exps:
            raise click.ClickException(f"no experiment '{slug}'" + (f" version {version}" if version else ""))
        frame = export_frame(session, exps, include_pilot=include_pilot)
        write_export(frame, out)
        click.echo(f"wrote {len(frame)} rows ({frame['participant_id'].nunique()} participants) to {out}", err=True)


@click.group()
def admin() -> None:
    """Researcher accounts."""


@admin.command("create-user")
@click.argument("username")
@click.option("--password", envvar="INTERP_STUDY_ADMIN_PASSWORD", default=None,
              help="password [env: INTERP_STUDY_ADMIN_PASSWORD; prompted when absent]")
@DB_OPTION
def create_user(username: str, password: Optional[str], database_url: Optional[str]) -> None:
    """Create a researcher account (or reset its password)."""
    from sqlalchemy import select
    from werkzeug.security import generate_password_hash

    from .models import User

    if password is None:
        password = getpass.getpass("Password: ")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    app = _app(database_url)
    _upgrade(app)
    with app.app_context():
        from .db import get_session

        session = get_session()
        user = session.scalars(select(User).where(User.username == username)).first()
        hashed = generate_password_hash(password)
        if user is None:
            session.add(User(username=username, password_hash=hashed))
            click.echo(f"created user {username}")
        else:
            user.password_hash = hashed
            click.echo(f"password of {username} reset")
        session.commit()
