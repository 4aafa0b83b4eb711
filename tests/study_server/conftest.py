"""Helpers for the study-server tests: experiment files from dicts, an admin account, logins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def experiment_yaml(tiny_set: Path, **overrides: Any) -> dict[str, Any]:
    """A valid experiment config over the tiny set (2 conditions, 12 main items each, 4 practice, 4 catch)."""
    cfg: dict[str, Any] = {
        "slug": "tiny", "title": "Which shape is bigger?", "stimuli": str(Path(tiny_set).resolve()),
        "conditions": ["reference", "none"], "design": "within", "trials_per_participant": 6,
        "practice": {"trials": 0, "feedback": True}, "catch": {"trials": 0, "min_accuracy": 0.5}, "seed": 7,
        "recruitment": {"platform": "prolific",
                        "completion_url": "https://app.prolific.com/submissions/complete?cc=TINY123"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_experiment(folder: Path, tiny_set: Path, **overrides: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = experiment_yaml(tiny_set, **overrides)
    path = folder / f"{cfg['slug']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def register(app, path: Path):  # type: ignore[no-untyped-def]
    """Register ``path`` in ``app``'s database; returns the Experiment."""
    from study_server.db import get_session
    from study_server.services.experiments import register_experiment

    with app.app_context():
        return register_experiment(get_session(), path).experiment


def csrf_token(client, url: str = "/admin/login") -> str:  # type: ignore[no-untyped-def]
    match = CSRF_RE.search(client.get(url).get_data(as_text=True))
    assert match, f"no CSRF token on {url}"
    return match.group(1)


@pytest.fixture
def admin_user(app) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A researcher account (user name, password) in ``app``'s database."""
    from werkzeug.security import generate_password_hash

    from study_server.db import get_session
    from study_server.models import User

    with app.app_context():
        s = get_session()
        s.add(User(username="researcher", password_hash=generate_password_hash("correct horse battery")))
        s.commit()
    return "researcher", "correct horse battery"


@pytest.fixture
def admin_client(app, client, admin_user):  # type: ignore[no-untyped-def]
    """``client`` logged in as the researcher."""
    token = csrf_token(client)
    resp = client.post("/admin/login", data={"username": admin_user[0], "password": admin_user[1],
                                             "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


@pytest.fixture(scope="session")
def three_set(tiny_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny set relabelled into three conditions: reference (12 items), none (6), third (6)."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("stimuli") / "three"
    shutil.copytree(tiny_set, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"] = "tiny-three-conditions"
    manifest["conditions"] = [{"name": "reference", "role": "method", "baselines": ["none", "third"]},
                              {"name": "none", "role": "baseline"}, {"name": "third", "role": "baseline"}]
    for item in manifest["items"]:
        if item["condition"] == "none" and int(item["id"].split("/")[1]) >= 6:
            item["condition"] = "third"
            item["id"] = item["id"].replace("none/", "third/")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def start(app, slug: str, n: int = 1, external_id: str | None = None):  # type: ignore[no-untyped-def]
    """Start ``n`` participants through the service layer; returns their public ids."""
    from study_server.db import get_session
    from study_server.services.experiments import latest_experiment
    from study_server.services.participants import start_participant

    ids = []
    with app.app_context():
        s = get_session()
        for _ in range(n):
            exp = latest_experiment(s, slug)
            ids.append(start_participant(s, exp, external_id, {}).participant.public_id)
    return ids
