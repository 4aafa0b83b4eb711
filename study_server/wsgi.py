"""WSGI entry point for gunicorn: ``gunicorn study_server.wsgi:app``."""

from . import create_app

app = create_app()
