"""A participant over the real HTTP API, used by bots, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from stimuli_builder.manifest import Item, load_manifest

__all__ = ["ApiParticipant", "ManifestOracle", "TrialView", "AnswerRecord"]


@dataclass
class TrialView:
    """A trial as the API serves it, plus what an oracle knows of it."""

    data: dict[str, Any]
    item: Optional[Item] = None
    correct_side: Optional[int] = None
    item_kind: Optional[str] = None  # main, practice or catch, from the answer key


    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def kind(self) -> str:
        """The trial's kind; catch trials are served as 'main', so the answer key tells them apart."""
        return self.item_kind or str(self.data["kind"])


@dataclass
class AnswerRecord:
    trial_id: int
    position: int
    kind: str
    condition: Optional[str]
    choice: int
    correct: Optional[bool]
    rt_ms: float
    status: int
    reply: dict[str, Any] = field(default_factory=dict)


def _media_name(url: str) -> str:
    """'/media/3/images/ab12.png' -> 'images/ab12.png'"""
    return url.split("/", 3)[-1] if url.startswith("/media/") else url


class ManifestOracle:
    """Knows the answer key of a stimulus set by matching served image/text options to items.

    Only simulations and tests use it: a real participant never has it.
    """

    def __init__(self, stimuli_dir: str | Path) -> None:
        self.manifest = load_manifest(stimuli_dir, check_images=False)
        self.by_options: dict[tuple[str, ...], list[Item]] = {}
        self.kind_of: dict[str, str] = {}
        for kind, item in self.manifest.all_items():
            self.kind_of[item.id] = kind
            key = tuple(sorted(self._opt(o) for o in item.options))
            self.by_options.setdefault(key, []).append(item)

    @staticmethod
    def _opt(option: Any) -> str:
        if isinstance(option, dict):
            return _media_name(option["image"]) if "image" in option else "text:" + option["text"]
        return option.image if option.image is not None else "text:" + str(option.text)

    def lookup(self, trial: dict[str, Any]) -> tuple[Optional[Item], Optional[int]]:
        """The item behind a served trial and the screen side (0/1) of its correct option."""
        served = [self._opt(o) for o in trial["options"]]
        candidates = self.by_options.get(tuple(sorted(served)), [])
        context = [[_media_name(u) for u in g["images"]] for g in trial.get("context", [])]
        for item in candidates:
            if [list(g.images) for g in item.context] == context and item.prompt == trial["prompt"]:
                correct_name = self._opt(item.options[item.correct])
                return item, served.index(correct_name)
        return None, None


class ApiParticipant:
    """One participant going through the study over HTTP."""

    def __init__(self, base_url: str, slug: str, session: Optional[requests.Session] = None,
                 timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.slug = slug
        self.http = session or requests.Session()
        self.timeout = timeout
        self.token: Optional[str] = None
        self.participant_id: Optional[str] = None
        self.records: list[AnswerRecord] = []

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self, external_id: Optional[str] = None, params: Optional[dict[str, str]] = None) -> dict[str, Any]:
        resp = self.http.post(f"{self.base}/experiments/{self.slug}/participants",
                              json={"external_id": external_id, "params": params or {}}, timeout=self.timeout)
        resp.raise_for_status()
        data = resp.json()
        self.token = data["token"]
        self.participant_id = data["participant_id"]
        return data

    def current(self) -> dict[str, Any]:
        resp = self.http.get(f"{self.base}/trial", headers=self._headers(), timeout=self.timeout)
        resp.raise_for_status()
        return resp.json()

    def answer(self, trial_id: int, choice: int, rt_ms: float, with_next: bool = False) -> requests.Response:
        """POST an answer; ``with_next``: the reply also carries the next trial under ``next``."""
        query = "?next=1" if with_next else ""
        return self.http.post(f"{self.base}/trials/{trial_id}/response{query}", headers=self._headers(),
                              json={"choice": choice, "rt_ms": rt_ms}, timeout=self.timeout)

    def run(self, policy: Callable[[TrialView], tuple[int, float]], oracle: Optional[ManifestOracle] = None,
            max_trials: Optional[int] = None) -> dict[str, Any]:
        """Answer trials with ``policy`` until finished (or ``max_trials``); returns the last trial reply.

        Like the participant page: ``GET /trial`` once, then each answer's reply carries the next trial.
        """
        answered = 0
        data: Optional[dict[str, Any]] = None
        while True:
            if data is None:
                data = self.current()
            if data.get("finished"):
                return data
            if max_trials is not None and answered >= max_trials:
                return data
            view = TrialView(data["trial"])
            if oracle is not None:
                view.item, view.correct_side = oracle.lookup(view.data)
                if view.item is not None:
                    view.item_kind = oracle.kind_of[view.item.id]
            choice, rt = policy(view)
            resp = self.answer(view.id, choice, rt, with_next=True)
            reply = resp.json() if resp.content else {}
            data = reply.get("next") if isinstance(reply, dict) else None
            self.records.append(AnswerRecord(
                trial_id=view.id, position=view.data["position"], kind=view.kind,
                condition=view.item.condition if view.item else None, choice=choice,
                correct=(choice == view.correct_side) if view.correct_side is not None else None,
                rt_ms=rt, status=resp.status_code, reply=reply))
            resp.raise_for_status()
            answered += 1
