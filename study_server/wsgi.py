"""WSGI entry point for gunicorn: ``gunicorn study_server.wsgi:app``.

Each worker imports this module at boot (no ``--preload``), so ``warm_up`` opens the
worker's own database connection before its first request; then the worker says it is
ready on stderr (the server log), which is how scripts can tell that every worker is up.
"""

import os
import sys

from . import create_app
from .warmup import warm_up

app = create_app()
_warm = warm_up(app)
print(f"interp-study: worker {os.getpid()} ready" + ("" if _warm else " (database not reachable yet)"),
      file=sys.stderr, flush=True)
