"""Helpers for the robustness tests: a database snapshot that shows any change to stored data,
and participants started through the API."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import select


def snapshot(app: Any) -> dict[str, Any]:
    """Row counts of every participant-facing table and a digest of their contents."""
    from study_server.db import get_session
    from study_server.models import Event, Experiment, Participant, Response, Trial

    with app.app_context():
        s = get_session()
        rows: dict[str, Any] = {}
        rows["experiment"] = [(e.id, e.status, e.n_participants) for e in s.scalars(select(Experiment).order_by(Experiment.id))]
        rows["participant"] = [(p.id, p.token_hash, p.status, p.external_id, json.dumps(p.params, sort_keys=True),
                                str(p.finished_at)) for p in s.scalars(select(Participant).order_by(Participant.id))]
        rows["trial"] = [(t.id, t.participant_id, t.position, t.item_id, t.left_option, str(t.shown_at))
                         for t in s.scalars(select(Trial).order_by(Trial.id))]
        rows["response"] = [(r.trial_id, r.chosen_side, r.correct, r.rt_ms, r.confidence, str(r.answered_at))
                            for r in s.scalars(select(Response).order_by(Response.id))]
        rows["event"] = [(e.id, e.participant_id, e.trial_id, e.type, json.dumps(e.data, sort_keys=True))
                         for e in s.scalars(select(Event).order_by(Event.id))]
        s.rollback()
    digest = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()
    return {"counts": {k: len(v) for k, v in rows.items()}, "digest": digest}


def auth(token: str) -> dict[str, str]:
    """The participant API's Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def start(client: Any, slug: str = "tiny", external_id: str | None = None) -> dict[str, Any]:
    """Start (or resume) a participant; returns the API's answer."""
    resp = client.post(f"/api/v1/experiments/{slug}/participants", json={"external_id": external_id, "params": {}})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def current(client: Any, token: str) -> dict[str, Any]:
    """GET /api/v1/trial for ``token``."""
    resp = client.get("/api/v1/trial", headers=auth(token))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def two_participants(app: Any, client: Any, registered: Any) -> dict[str, Any]:
    """Two started participants, each shown their first trial."""
    a, b = start(client, external_id="A"), start(client, external_id="B")
    ta, tb = current(client, a["token"])["trial"], current(client, b["token"])["trial"]
    return {"a": a["token"], "b": b["token"], "a_trial": ta["id"], "b_trial": tb["id"], "exp_id": registered.id}
