"""Registering experiment versions from a YAML file and its stimulus set."""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from stimuli_builder.manifest import ManifestError, load_manifest

from ..config_schema import ConfigError, ExperimentConfig, config_hash, load_experiment_config, validate_config_data
from ..errors import NotFound
from ..models import Experiment, Item
from .scheduling import ItemRef, ScheduleError, check_feasible

__all__ = ["register_experiment", "register_upload", "register_config", "Registered", "latest_experiment",
           "item_refs", "set_status", "STATUSES", "latest_experiment_id"]

STATUSES = ("live", "paused", "closed")  # what a researcher may set; 'superseded' is set by a new version


@dataclass
class Registered:
    experiment: Experiment
    created: bool


def register_experiment(session: Session, path: str | Path) -> Registered:
    """Validate ``path`` and its stimulus set and store a new frozen version.

    The same file (and manifest) again returns the existing version; a changed file makes
    a new version and marks the older live one ``superseded``. Raises ``ConfigError`` naming
    the field for anything the researcher must fix; nothing is written in that case.
    """
    cfg, stimuli_dir = load_experiment_config(path)
    return register_config(session, cfg, stimuli_dir, source=str(path))


def register_upload(session: Session, text: str, filename: str, stimuli_root: Optional[str | Path]) -> Registered:
    """Register an uploaded experiment YAML (the admin page).

    An upload has no folder of its own, so ``stimuli`` and text-file names must be absolute
    paths or relative to ``stimuli_root`` (the ``STIMULI_ROOT`` setting). With a
    ``stimuli_root`` every such path must also resolve inside it (symbolic links followed),
    so an admin account cannot make the server read files elsewhere. Errors are
    ``ConfigError`` with ``fields`` filled in.
    """
    source = Path(Path(filename).name or "upload.yaml")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = f"not valid YAML: {getattr(exc, 'problem', exc)}"
        raise ConfigError(f"{source}: {where}: {reason}", [(where, reason)]) from None
    if isinstance(data, dict) and stimuli_root is None:
        for key, value in _file_fields(data):
            if not Path(value).is_absolute():
                reason = (f"'{value}' is relative, but an upload has no folder: give an absolute path, "
                          "or set STIMULI_ROOT (env INTERP_STUDY_STIMULI_ROOT) on the server")
                raise ConfigError(f"{source}: {key}: {reason}", [(key, reason)])
    base = Path(stimuli_root).resolve() if stimuli_root is not None else Path("/")
    if isinstance(data, dict) and stimuli_root is not None:
        for key, value in _file_fields(data):
            where = (base / value).resolve()
            if where != base and base not in where.parents:
                reason = f"'{value}' is outside STIMULI_ROOT ({base}); uploads may only use files under it"
                raise ConfigError(f"{source}: {key}: {reason}", [(key, reason)])
    cfg, stimuli_dir = validate_config_data(data, source, base=base)
    return register_config(session, cfg, stimuli_dir, source=str(source))


def _file_fields(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields of a raw experiment file that name files: ``stimuli`` and text files."""
    paths = [("stimuli", data.get("stimuli"))]
    if isinstance(data.get("text"), dict):
        paths += [(f"text.{k}", v) for k, v in data["text"].items()]
    return [(key, value) for key, value in paths
            if isinstance(value, str) and "\n" not in value and "\x00" not in value
            and (key == "stimuli" or value.endswith((".md", ".txt", ".markdown")))]


def register_config(session: Session, cfg: ExperimentConfig, stimuli_dir: Path, source: str) -> Registered:
    """Register an already validated config (used by the CLI and the admin upload)."""
    try:
        manifest = load_manifest(stimuli_dir)
    except ManifestError as exc:
        raise ConfigError(f"{source}: stimuli: {exc}", [("stimuli", str(exc))]) from None
    known = [c.name for c in manifest.conditions]
    missing = [c for c in cfg.conditions if c not in known]
    if missing:
        reason = f"{missing} not in the stimulus set's conditions {known}"
        raise ConfigError(f"{source}: conditions: {reason}", [("conditions", reason)])
    manifest_bytes = (stimuli_dir / "manifest.json").read_bytes()
    digest = config_hash(cfg, manifest_bytes)

    latest = session.scalars(select(Experiment).where(Experiment.slug == cfg.slug)
                             .order_by(Experiment.version.desc()).limit(1)).first()
    if latest is not None and latest.config_hash == digest:
        return Registered(latest, created=False)

    items = []
    for kind, it in manifest.all_items():
        if kind == "main" and it.condition not in cfg.conditions:
            continue
        items.append(Item(key=it.id, kind=kind, condition=it.condition, family=it.family, prompt=it.prompt,
                          context=[g.model_dump(mode="json") for g in it.context],
                          options=[o.model_dump(mode="json", exclude_none=True) for o in it.options],
                          correct=it.correct, meta=it.meta))
    refs = [ItemRef(id=i, key=x.key, kind=x.kind, condition=x.condition, correct=x.correct)
            for i, x in enumerate(items)]
    try:
        check_feasible(cfg, refs)
    except ScheduleError as exc:
        where, _, reason = str(exc).partition(": ")
        raise ConfigError(f"{source}: {exc}", [(where, reason)]) from None

    version = (latest.version + 1) if latest else 1
    exp = Experiment(slug=cfg.slug, version=version, title=cfg.title, config=cfg.model_dump(mode="json"),
                     config_hash=digest, stimuli_path=str(stimuli_dir), manifest_name=manifest.name,
                     task=manifest.task, conditions=[c.model_dump(mode="json") for c in manifest.conditions],
                     status="live", n_participants=0, items=items)
    if latest is not None and latest.status in ("live", "paused"):
        latest.status = "superseded"
    session.add(exp)
    session.commit()
    return Registered(exp, created=True)


def latest_experiment(session: Session, slug: str, version: int | None = None) -> Experiment:
    """The newest version of ``slug`` (or the given version); ``NotFound`` otherwise."""
    query = select(Experiment).where(Experiment.slug == slug)
    if version is not None:
        query = query.where(Experiment.version == version)
    exp = session.scalars(query.order_by(Experiment.version.desc()).limit(1)).first()
    if exp is None:
        raise NotFound(f"no experiment '{slug}'", code="unknown_experiment")
    return exp


_LATEST_ID = (select(Experiment.id).where(Experiment.slug == bindparam("slug"))
              .order_by(Experiment.version.desc()).limit(1))


def latest_experiment_id(session: Session, slug: str) -> int:
    """The id of the newest version of ``slug`` (one small prepared query; ``NotFound`` otherwise)."""
    exp_id = session.execute(_LATEST_ID, {"slug": slug}).scalar()
    if exp_id is None:
        raise NotFound(f"no experiment '{slug}'", code="unknown_experiment")
    return int(exp_id)


def item_refs(session: Session, experiment_id: int) -> list[ItemRef]:
    rows = session.execute(select(Item.id, Item.key, Item.kind, Item.condition, Item.correct)
                           .where(Item.experiment_id == experiment_id)).all()
    return [ItemRef(id=r.id, key=r.key, kind=r.kind, condition=r.condition, correct=r.correct) for r in rows]


def set_status(session: Session, experiment: Experiment, status: str) -> None:
    """Pause, close or reopen a version. A superseded version stays superseded."""
    if status not in STATUSES:
        raise ConfigError(f"status: unknown status '{status}' (choose one of {', '.join(STATUSES)})",
                          [("status", f"unknown status '{status}'")])
    if experiment.status == "superseded":
        raise ConfigError("status: this version was superseded by a newer one; change the newest version",
                          [("status", "version superseded")])
    experiment.status = status
    session.commit()
