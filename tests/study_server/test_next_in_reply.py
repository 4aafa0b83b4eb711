"""``POST /trials/<id>/response?next=1``: the reply carries what ``GET /trial`` would answer next.

The participant page, the bots and the load benchmark use it: one round trip and one write
transaction per trial instead of two. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from study_server.db import get_session
from study_server.models import Participant, Response, Trial

from .test_api import _auth
from .test_api import _trial as _get


def _start(client) -> str:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/experiments/tiny/participants", json={"external_id": None, "params": {}})
    assert resp.status_code == 201
    return resp.get_json()["token"]


def _post(client, token: str, trial_id: int, choice: int = 0, query: str = "?next=1"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/trials/{trial_id}/response{query}", headers=_auth(token),
                       json={"choice": choice, "rt_ms": 500})


def _shown_at(app, trial_id: int):  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_session().scalar(select(Trial.shown_at).where(Trial.id == trial_id))


def test_next_equals_what_get_trial_answers_through_to_the_end(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)
    data = _get(client, token)
    seen = []
    while not data.get("finished"):
        trial = data["trial"]
        seen.append(trial["position"])
        reply = _post(client, token, trial["id"])
        assert reply.status_code == 200
        body = reply.get_json()
        assert body["stored"] is True and body["duplicate"] is False
        # the next trial handed out in the reply is exactly what GET /trial now answers
        assert body["next"] == _get(client, token)
        assert "correct" not in json.dumps(body["next"]) and "condition" not in json.dumps(body["next"])
        data = body["next"]
    assert seen == [1, 2, 3, 4, 5, 6]
    assert data == {"trial": None, "finished": True,
                    "completion_url": "https://app.prolific.com/submissions/complete?cc=TINY123",
                    "completion_code": None, "completion_form": None}
    with app.app_context():
        s = get_session()
        assert s.scalar(select(Participant.status)) == "finished"
        assert len(s.scalars(select(Response)).all()) == 6


def test_next_trial_is_marked_shown_in_the_same_write(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)
    first = _get(client, token)["trial"]
    assert _shown_at(app, first["id"]) is not None
    # without next=1 the following trial is not handed out, so not marked shown
    plain = _post(client, token, first["id"], query="")
    assert plain.get_json() == {"stored": True, "duplicate": False}
    second = _get(client, token)["trial"]
    reply = _post(client, token, second["id"]).get_json()
    third = reply["next"]["trial"]
    assert third["position"] == 3 and _shown_at(app, third["id"]) is not None
    with app.app_context():
        s = get_session()
        answered_at = s.scalar(select(Response.answered_at).where(Response.trial_id == second["id"]))
        assert s.scalar(select(Trial.shown_at).where(Trial.id == third["id"])) == answered_at
        unserved = s.scalars(select(Trial.shown_at).where(Trial.position > 3)).all()
        assert unserved and all(v is None for v in unserved)


def test_replayed_answer_with_next_returns_first_result_and_current_trial(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)
    first = _get(client, token)["trial"]
    one = _post(client, token, first["id"], choice=0).get_json()
    two = _post(client, token, first["id"], choice=1).get_json()  # a replay, e.g. after a lost reply
    assert one["duplicate"] is False and two["duplicate"] is True
    assert two["next"] == one["next"] and two["next"]["trial"]["position"] == 2
    with app.app_context():
        rows = get_session().scalars(select(Response).where(Response.trial_id == first["id"])).all()
        assert len(rows) == 1 and rows[0].chosen_side == 0


def test_bad_next_value_is_a_400_that_stores_nothing(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)
    first = _get(client, token)["trial"]
    resp = _post(client, token, first["id"], query="?next=maybe")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["message"].startswith("next:")
    with app.app_context():
        assert get_session().scalars(select(Response)).all() == []


def test_practice_feedback_and_next_together(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stimuli_builder.tiny import write_tiny_experiment
    from study_server.services.experiments import register_experiment

    path = write_tiny_experiment(tmp_path / "p", tiny_set, slug="tiny", trials=2, practice=2, catch=0)
    with app.app_context():
        register_experiment(get_session(), path)
    token = _start(client)
    data = _get(client, token)
    kinds = []
    while not data.get("finished"):
        body = _post(client, token, data["trial"]["id"]).get_json()
        kinds.append(data["trial"]["kind"])
        assert ("feedback" in body) == (data["trial"]["kind"] == "practice")
        data = body["next"]
    assert kinds == ["practice", "practice", "main", "main"]
