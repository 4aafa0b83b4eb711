"""Caches of what never changes once registered: items and frozen experiment configs.

The hot path (serve a trial, store a response) then needs two small queries and no
per-request config validation. Items live in a per-app cache (``app.extensions``), so
one process serving several databases (tests) never mixes them; configs are keyed by
their content hash, so the same hash always means the same config.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config_schema import ExperimentConfig
from ..models import Experiment, Item

__all__ = ["ItemView", "ItemCache", "config_of"]

_CONFIGS: "OrderedDict[str, ExperimentConfig]" = OrderedDict()
_CONFIG_LOCK = threading.Lock()
_MAX_CONFIGS = 256


def config_of(exp: Experiment) -> ExperimentConfig:
    """The validated config of a (frozen) experiment version, parsed once per process."""
    with _CONFIG_LOCK:
        cfg = _CONFIGS.get(exp.config_hash)
        if cfg is not None:
            _CONFIGS.move_to_end(exp.config_hash)
            return cfg
    cfg = ExperimentConfig.model_validate(exp.config)
    with _CONFIG_LOCK:
        _CONFIGS[exp.config_hash] = cfg
        while len(_CONFIGS) > _MAX_CONFIGS:
            _CONFIGS.popitem(last=False)
    return cfg


@dataclass(frozen=True)
class ItemView:
    """An item as the hot path needs it (immutable)."""

    id: int
    experiment_id: int
    key: str
    kind: str
    condition: str
    prompt: str
    context: tuple[tuple[str, tuple[str, ...]], ...]
    options: tuple[tuple[str, str], ...]  # ("image", path) or ("text", text)
    correct: int

    def image_paths(self) -> list[str]:
        paths = [p for _label, imgs in self.context for p in imgs]
        return paths + [value for kind, value in self.options if kind == "image"]


def _view(item: Any) -> ItemView:
    context = tuple((g["label"], tuple(g.get("images", []))) for g in item.context)
    options = tuple(("image", o["image"]) if "image" in o else ("text", o["text"]) for o in item.options)
    return ItemView(item.id, item.experiment_id, item.key, item.kind, item.condition, item.prompt, context, options,
                    item.correct)


class ItemCache:
    """Items by id (bounded LRU) and experiment configs by experiment id, for one database.

    Both never change once an experiment version is registered.
    """

    def __init__(self, max_items: int = 200_000) -> None:
        self._items: "OrderedDict[int, ItemView]" = OrderedDict()
        self._configs: dict[int, ExperimentConfig] = {}
        self._refs: "OrderedDict[int, list[Any]]" = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items

    def config(self, session: Session, experiment_id: int) -> ExperimentConfig:
        """The frozen config of experiment version ``experiment_id``."""
        cfg = self._configs.get(experiment_id)
        if cfg is None:
            exp = session.get(Experiment, experiment_id)
            if exp is None:
                raise KeyError(experiment_id)
            cfg = config_of(exp)
            with self._lock:
                self._configs[experiment_id] = cfg
        return cfg

    def refs(self, session: Session, experiment_id: int) -> list[Any]:
        """The ``ItemRef`` list of experiment version ``experiment_id`` (what schedules are drawn from)."""
        refs = self._refs.get(experiment_id)
        if refs is None:
            from .experiments import item_refs

            refs = item_refs(session, experiment_id)
            with self._lock:
                self._refs[experiment_id] = refs
                while len(self._refs) > 64:
                    self._refs.popitem(last=False)
        return refs

    def get_many(self, session: Session, ids: Iterable[int]) -> dict[int, ItemView]:
        wanted = set(ids)
        found: dict[int, ItemView] = {}
        with self._lock:
            for i in wanted:
                view = self._items.get(i)
                if view is not None:
                    found[i] = view
        missing = wanted - set(found)
        if missing:
            rows = session.execute(select(Item.id, Item.experiment_id, Item.key, Item.kind, Item.condition,
                                          Item.prompt, Item.context, Item.options, Item.correct)
                                   .where(Item.id.in_(missing))).all()
            fresh = {row.id: _view(row) for row in rows}
            found.update(fresh)
            with self._lock:
                self._items.update(fresh)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return found

    def get(self, session: Session, item_id: int) -> ItemView:
        return self.get_many(session, [item_id])[item_id]
