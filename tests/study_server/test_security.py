"""Participant-side security: no answer leaks before a response, tokens only reach their own trials."""

from __future__ import annotations

from typing import Any, Iterator

from sqlalchemy import select

from study_server.db import get_session
from study_server.models import Item, Response, Trial
from tests.study_server.conftest import register, write_experiment

FORBIDDEN_KEYS = {"correct", "correct_side", "condition", "family", "meta", "item_id", "key", "left_option"}


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def test_nothing_served_before_an_answer_says_which_option_is_correct(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exp = register(app, write_experiment(tmp_path, tiny_set, slug="sec", trials_per_participant=6,
                                         practice={"trials": 2, "worked_examples": 1}, catch={"trials": 2}))
    with app.app_context():
        items = get_session().scalars(select(Item).where(Item.experiment_id == exp.id)).all()
        # item ids, conditions and families of main items (practice/catch families are named like the
        # trial kinds, which the API serves by contract)
        secrets = {it.key for it in items} | {it.condition for it in items} | {
            it.family for it in items if it.kind == "main"}
    start = client.post("/api/v1/experiments/sec/participants", json={"params": {"PROLIFIC_PID": "s1"}})
    token = start.get_json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    served = [start.get_json()]
    kinds = []
    while True:
        data = client.get("/api/v1/trial", headers=h).get_json()
        served.append(data)
        if data.get("finished"):
            break
        kinds.append(data["trial"]["kind"])
        reply = client.post(f"/api/v1/trials/{data['trial']['id']}/response", headers=h,
                            json={"choice": 0, "rt_ms": 500}).get_json()
        # after the answer, only practice trials say whether it was right
        assert ("feedback" in reply) == (data["trial"]["kind"] == "practice")
        assert set(reply) <= {"stored", "duplicate", "feedback"}
    # catch trials are served as "main": an attention check must not announce itself
    assert kinds == ["practice", "practice"] + ["main"] * 8
    for payload in served:
        for where, value in _walk(payload):
            assert not (where.endswith(f".{value}") and value in FORBIDDEN_KEYS), where
            assert not (isinstance(value, str) and value in secrets), (where, value)
    # neither does the trial page (its worked example is a reserved item that is never a trial)
    page = client.get("/study/sec/run").get_data(as_text=True)
    with app.app_context():
        shown_items = {t.item.key for t in get_session().scalars(select(Trial))}
    assert not any(key in page for key in shown_items)


def test_token_reaches_only_its_own_trials(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    a = client.post("/api/v1/experiments/tiny/participants", json={}).get_json()["token"]
    b = client.post("/api/v1/experiments/tiny/participants", json={}).get_json()["token"]
    ta = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {a}"}).get_json()["trial"]
    tb = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {b}"}).get_json()["trial"]
    with app.app_context():
        b_trials = [t.id for t in get_session().scalars(select(Trial).where(Trial.id != ta["id"]))
                    if t.participant_id != get_session().get(Trial, ta["id"]).participant_id]
    assert tb["id"] in b_trials
    for trial_id in b_trials:  # every one of B's trials, current or not
        resp = client.post(f"/api/v1/trials/{trial_id}/response", headers={"Authorization": f"Bearer {a}"},
                           json={"choice": 1, "rt_ms": 100})
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "unknown_trial"
    with app.app_context():
        assert get_session().scalars(select(Response)).all() == []
    # B still sees its own first trial; A's GET never returns one of B's
    assert client.get("/api/v1/trial", headers={"Authorization": f"Bearer {b}"}).get_json()["trial"]["id"] == tb["id"]
    assert client.get("/api/v1/trial", headers={"Authorization": f"Bearer {a}"}).get_json()["trial"]["id"] == ta["id"]


def test_participant_cookie_is_httponly_and_scoped(client, registered) -> None:  # type: ignore[no-untyped-def]
    import re

    page = client.get("/study/tiny?PROLIFIC_PID=c1").get_data(as_text=True)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    resp = client.post("/study/tiny/start", data={**fields, "consent": "agree"})
    cookie = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("isp_tiny=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/study/tiny" in cookie
