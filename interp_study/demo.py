"""``interp-study demo``: from a fresh clone to a running study.

Builds (or reuses) the demo world and its stimulus sets, registers two experiments (a
replication of Borowski et al.'s unit-prediction design and a forward-simulation study with
real and manipulated explanations), creates an admin login, and serves on SQLite.
``--simulate N`` instead runs N simulated participants through a real server and writes
the analysis report.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import click

__all__ = ["demo", "prepare_demo", "experiment_yaml"]

DEFAULT_DATA = Path("demo-data")

TEXT = {
    "unit_prediction": {
        "consent": ("This is a demonstration study of **interp-study**. You will see images and answer "
                    "questions about them. It takes about 10 minutes. No personal data is collected "
                    "besides your answers and response times."),
        "instructions": (
            "A neural network has *units* that respond to some images more than others.\n\n"
            "On each screen you may see **reference images**: some that make a unit respond strongly and "
            "some that make it respond weakly. Below them are **two query images**. Choose the query image "
            "that you think makes the unit respond **more strongly**.\n\n"
            "*Worked example:* if the strongly activating references all show red stripes and the weak ones "
            "show blue dots, a query image with red stripes is the better guess.\n\n"
            "Sometimes there are no references: then make your best guess. The first few questions are "
            "practice and tell you whether you were right."),
        "debrief": ("Thank you! This demo replicates the design of Borowski et al. (2021): do feature "
                    "visualizations help people predict a unit's behaviour more than natural exemplars?"),
    },
    "forward_simulation": {
        "consent": "This is a demonstration study of **interp-study**. It takes about 5 minutes.",
        "instructions": (
            "You will see an image, sometimes with an *explanation* (a heat map of the pixels the model "
            "relied on). Choose which of two classes **the model** predicted for the image. The model is "
            "not always right, so think about what the model would say, not what the image shows.\n\n"
            "*Worked example:* if the heat map lights up a round shape and the options are 'circle' and "
            "'square', the model probably said 'circle'."),
        "debrief": ("Thank you! Some explanations you saw were manipulated (computed from a randomized "
                    "model or inverted): the study measures whether that changed your accuracy."),
    },
}


# The forward-simulation demo: two real explanation methods, their manipulated twins, and
# the no-explanation baseline (the full set has 23 conditions: too many for one sitting).
FORWARD_SIM_CONDITIONS = ["integrated_gradients", "gradcam", "integrated_gradients_random_model",
                          "gradcam_random_model", "gradcam_inverted", "none"]


def experiment_yaml(slug: str, title: str, stimuli: Path, manifest: dict[str, Any], per_condition: int = 15,
                    practice: int = 5, catch: int = 6, extra: Optional[dict[str, Any]] = None,
                    conditions: Optional[list[str]] = None) -> dict[str, Any]:
    """An experiment config (as a dict) using ``conditions`` (default: all) of ``manifest``.

    Each method is compared with its declared baselines that take part, and with its
    manipulated twins (conditions named ``<method>_...``) that take part.
    """
    known = [c["name"] for c in manifest["conditions"]]
    conds = [c for c in (conditions or known) if c in known]
    counts = {c: sum(1 for it in manifest["items"] if it["condition"] == c) for c in conds}
    per = max(1, min([per_condition, *counts.values()]))
    baselines: dict[str, list[str]] = {}
    for c in manifest["conditions"]:
        if c.get("role") != "method" or c["name"] not in conds:
            continue
        twins = [m for m in conds if m.startswith(c["name"] + "_")]
        compared = [b for b in c.get("baselines", []) if b in conds] + twins
        if compared:
            baselines[c["name"]] = compared
    text = TEXT.get(manifest["task"], TEXT["unit_prediction"])
    cfg: dict[str, Any] = {
        "slug": slug, "title": title, "stimuli": str(stimuli.resolve()), "conditions": conds,
        "design": "within", "trials_per_participant": per * len(conds),
        "practice": {"trials": min(practice, len(manifest.get("practice_items", []))), "feedback": True},
        "catch": {"trials": min(catch, len(manifest.get("catch_items", []))), "min_accuracy": 0.5},
        "blocks": {"n": 3, "by": "mixed", "breaks": True}, "seed": 42, "text": text,
        "recruitment": {"platform": "prolific", "completion_code": "DEMO2026"},
        "analysis": {"baselines": baselines},
    }
    if extra:
        cfg.update(extra)
    return cfg


def _find_sets(root: Path) -> dict[str, Path]:
    """task name -> stimulus folder, for every manifest under ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("manifest.json")):
        try:
            task = json.loads(path.read_text())["task"]
        except (OSError, ValueError, KeyError):
            continue
        found.setdefault(task, path.parent)
    return found


def build_sets(data: Path, small: bool, tiny: bool, rebuild: bool) -> dict[str, Path]:
    """Build or reuse the demo stimulus sets; returns task -> folder."""
    stim = data / ("stimuli-tiny" if tiny else ("stimuli-small" if small else "stimuli"))
    if not rebuild:
        sets = _find_sets(stim)
        if sets:
            click.echo(f"demo: reusing stimulus sets in {stim}", err=True)
            return sets
    if tiny:
        from stimuli_builder.tiny import build_tiny_set

        build_tiny_set(stim / "tiny")
        return _find_sets(stim)
    try:
        from stimuli_builder import build_demo_sets
    except ImportError as exc:
        raise click.ClickException(f"the stimuli builder is not available ({exc}); install the 'stimuli' extra "
                                   "or run with --tiny") from None
    click.echo(f"demo: building the demo world and stimulus sets in {stim} (cached after the first run)", err=True)
    build_demo_sets(stim, small=small, seed=0, progress=True, log=lambda msg: click.echo(f"demo: {msg}", err=True))
    return _find_sets(stim)


def prepare_demo(data: Path, database_url: str, small: bool = False, tiny: bool = False,
                 rebuild: bool = False) -> list[tuple[str, Path]]:
    """Build the sets, write the experiment files and register them. Returns (slug, yaml)."""
    import yaml

    from study_server import create_app
    from study_server.config_schema import ConfigError
    from study_server.db import get_session, upgrade
    from study_server.services.experiments import register_experiment

    sets = build_sets(data, small, tiny, rebuild)
    plans = []
    if "unit_prediction" in sets:
        plans.append(("demo-borowski", "Which image drives the unit?", sets["unit_prediction"]))
    if "forward_simulation" in sets:
        plans.append(("demo-forward-sim", "What did the model predict?", sets["forward_simulation"]))
    if not plans:
        task, folder = next(iter(sets.items()))
        plans.append((f"demo-{task.replace('_', '-')}", "Demo study", folder))
    upgrade(database_url)
    app = create_app({"DATABASE_URL": database_url})
    out = []
    with app.app_context():
        for slug, title, folder in plans:
            manifest = json.loads((folder / "manifest.json").read_text())
            conditions = FORWARD_SIM_CONDITIONS if manifest["task"] == "forward_simulation" else None
            cfg = experiment_yaml(slug, title, folder, manifest, per_condition=6 if (small or tiny) else 15,
                                  conditions=conditions)
            path = data / f"{slug}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            try:
                reg = register_experiment(get_session(), path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            out.append((reg.experiment.slug, path))
    app.extensions["db_engine"].dispose()
    return out


def _admin_login(database_url: str) -> tuple[str, str]:
    from sqlalchemy import select
    from werkzeug.security import generate_password_hash

    from study_server import create_app
    from study_server.db import get_session
    from study_server.models import User

    password = os.environ.get("INTERP_STUDY_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
    app = create_app({"DATABASE_URL": database_url})
    with app.app_context():
        session = get_session()
        user = session.scalars(select(User).where(User.username == "admin")).first()
        if user is None:
            session.add(User(username="admin", password_hash=generate_password_hash(password)))
        else:
            user.password_hash = generate_password_hash(password)
        session.commit()
    app.extensions["db_engine"].dispose()
    return "admin", password


def _serve_in_thread(database_url: str, port: int) -> str:
    import logging

    from werkzeug.serving import make_server

    from study_server import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    app = create_app({"DATABASE_URL": database_url, "REQUEST_LOG": False, "RATELIMIT_ENABLED": False})
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def simulate(data: Path, n: int, small: bool, tiny: bool, rebuild: bool, seed: int) -> Path:
    """Run ``n`` bots against every demo experiment on a fresh SQLite file; write the reports."""
    import requests

    from study_server.db import get_session
    from study_server import create_app
    from study_server.services.experiments import latest_experiment
    from study_server.services.export import export_frame, write_export

    from .bots import BotSettings, run_bots
    from .httpclient import ManifestOracle

    db_path = data / "simulate.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db_path.resolve()}"
    studies = prepare_demo(data, url, small=small, tiny=tiny, rebuild=rebuild)
    base = _serve_in_thread(url, 0)
    requests.get(base + "/healthz", timeout=10).raise_for_status()
    reports = data / "reports"
    accuracy = {"natural": 0.9, "feature_vis": 0.8, "none": 0.6, "reference": 0.85}
    for slug, yaml_path in studies:
        app = create_app({"DATABASE_URL": url})
        with app.app_context():
            stimuli = latest_experiment(get_session(), slug).stimuli_path
        settings = BotSettings(accuracy=accuracy, default_accuracy=0.7, participant_sd=0.5, item_sd=0.3,
                               lapse_rate=0.02, seed=seed)
        click.echo(f"demo: {n} simulated participants on {slug}", err=True)
        result = run_bots(base, slug, n, settings, ManifestOracle(stimuli), concurrency=8, progress=True,
                          external_prefix=slug)
        if result.errors:
            raise click.ClickException(f"{len(result.errors)} bots failed, first: {result.errors[0]}")
        with app.app_context():
            session = get_session()
            frame = export_frame(session, [latest_experiment(session, slug)])
        app.extensions["db_engine"].dispose()
        export = write_export(frame, data / "exports" / f"{slug}.csv")
        out = reports / slug
        cmd = [sys.executable, "-m", "interp_study.cli", "analyze", str(export), "--plan", str(yaml_path),
               "--out", str(out)]
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise click.ClickException(f"the analysis of {slug} failed (exit {done.returncode})")
        click.echo(f"demo: report for {slug}: {out / 'report.html'}")
    return reports


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA, show_default=True,
              help="where the demo world, stimulus sets and experiment files live")
@click.option("--small", is_flag=True, help="a smaller, faster demo world (fewer units and steps)")
@click.option("--tiny", is_flag=True, help="only the tiny Pillow set (no torch needed)")
@click.option("--rebuild", is_flag=True, help="rebuild the stimulus sets even if they exist")
@click.option("--simulate", "simulate_n", type=click.IntRange(1, 10000), default=None,
              help="run N simulated participants and write the analysis report instead of serving")
@click.option("--seed", default=0, show_default=True, type=int, help="seed of the simulated participants")
@click.option("--no-serve", is_flag=True, help="prepare everything, then exit")
def demo(host: str, port: int, data: Path, small: bool, tiny: bool, rebuild: bool, simulate_n: Optional[int],
         seed: int, no_serve: bool) -> None:
    """Build the demo world and stimuli, register the demo studies and serve them on SQLite."""
    started = time.perf_counter()
    data.mkdir(parents=True, exist_ok=True)
    if simulate_n:
        simulate(data, simulate_n, small, tiny, rebuild, seed)
        return
    from study_server import create_app

    app = create_app()
    url = os.environ.get("DATABASE_URL") or app.config["DATABASE_URL"]
    studies = prepare_demo(data, url, small=small, tiny=tiny, rebuild=rebuild)
    user, password = _admin_login(url)
    click.echo("")
    click.echo(f"interp-study demo ready in {time.perf_counter() - started:.1f} s")
    for slug, _ in studies:
        click.echo(f"  participant link: http://{host}:{port}/study/{slug}?PROLIFIC_PID=demo-{secrets.token_hex(3)}"
                   f"&STUDY_ID=demo&SESSION_ID=1")
    click.echo(f"  admin:            http://{host}:{port}/admin/  (user '{user}', password '{password}')")
    click.echo("  stop with Ctrl-C\n")
    if no_serve:
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    app.config["REQUEST_LOG"] = False
    app.run(host=host, port=port, threaded=True, use_reloader=False)
