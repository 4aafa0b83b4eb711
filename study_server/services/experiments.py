"""Registering experiment versions from a YAML file and its stimulus set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stimuli_builder.manifest import ManifestError, load_manifest

from ..config_schema import ConfigError, ExperimentConfig, config_hash, load_experiment_config
from ..errors import NotFound
from ..models import Experiment, Item
from .scheduling import ItemRef, ScheduleError, check_feasible

__all__ = ["register_experiment", "Registered", "latest_experiment", "item_refs", "set_status"]


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


def register_config(session: Session, cfg: ExperimentConfig, stimuli_dir: Path, source: str) -> Registered:
    """Register an already validated config (used by the CLI and the admin upload)."""
    try:
        manifest = load_manifest(stimuli_dir)
    except ManifestError as exc:
        raise ConfigError(f"{source}: stimuli: {exc}") from None
    known = [c.name for c in manifest.conditions]
    missing = [c for c in cfg.conditions if c not in known]
    if missing:
        raise ConfigError(f"{source}: conditions: {missing} not in the stimulus set's conditions {known}")
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
        raise ConfigError(f"{source}: {exc}") from None

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


def item_refs(session: Session, experiment_id: int) -> list[ItemRef]:
    rows = session.execute(select(Item.id, Item.key, Item.kind, Item.condition, Item.correct)
                           .where(Item.experiment_id == experiment_id)).all()
    return [ItemRef(id=r.id, key=r.key, kind=r.kind, condition=r.condition, correct=r.correct) for r in rows]


def set_status(session: Session, experiment: Experiment, status: str) -> None:
    if status not in ("live", "paused", "closed"):
        raise ValueError(f"unknown status '{status}'")
    experiment.status = status
    session.commit()


def count_experiments(session: Session) -> int:
    return session.scalar(select(func.count(Experiment.id))) or 0
