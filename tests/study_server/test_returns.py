"""Reload policies and returning external ids: resume, restart (never counted twice), refuse."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from study_server.config_schema import ExperimentConfig
from study_server.db import get_session
from study_server.models import Participant, Response
from study_server.services.returns import return_action
from tests.study_server.conftest import CSRF_RE, experiment_yaml, register, write_experiment

PID = "PROLIFIC_PID=p1&STUDY_ID=s1&SESSION_ID=x1"


def _consent(client, slug: str, query: str = PID):  # type: ignore[no-untyped-def]
    """GET the start link, then POST the consent form with its hidden fields (as a browser does)."""
    page = client.get(f"/study/{slug}?{query}").get_data(as_text=True)
    fields = dict(__import__("re").findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    return client.post(f"/study/{slug}/start", data={**fields, "consent": "agree"})


def _cookie(client, slug: str) -> str:  # type: ignore[no-untyped-def]
    return client.get_cookie(f"isp_{slug}", path=f"/study/{slug}").value


def _answer_one(client, token: str) -> int:  # type: ignore[no-untyped-def]
    h = {"Authorization": f"Bearer {token}"}
    trial = client.get("/api/v1/trial", headers=h).get_json()["trial"]
    assert client.post(f"/api/v1/trials/{trial['id']}/response", headers=h,
                       json={"choice": 0, "rt_ms": 400}).status_code == 200
    return trial["position"]


def _people(app) -> list[tuple[int, str, str | None, int]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return [(p.attempt, p.status, p.between_condition, p.restarted_from_id is not None)
                for p in get_session().scalars(select(Participant).order_by(Participant.id))]


@pytest.mark.parametrize("policy, status, shown, via, on_return, expected", [
    ("resume", "started", True, "reload", "resume", "resume"),
    ("restart", "started", True, "reload", "resume", "restart"),
    ("refuse", "started", True, "reload", "resume", "refuse"),
    ("refuse", "started", False, "reload", "resume", "resume"),  # nothing seen yet
    ("restart", "started", False, "start_link", "resume", "resume"),
    ("restart", "finished", True, "start_link", "resume", "resume"),  # finished: see the end page again
    ("resume", "timed_out", True, "start_link", "resume", "refuse"),
    ("resume", "restarted", True, "reload", "resume", "refuse"),
    ("resume", "finished", True, "start_link", "refuse", "refuse"),
    ("resume", "started", False, "reload", "refuse", "resume"),  # on_return is about the start link
])
def test_return_action_table(tiny_set, policy, status, shown, via, on_return, expected) -> None:  # type: ignore[no-untyped-def]
    cfg = ExperimentConfig.model_validate(experiment_yaml(tiny_set, reload_policy=policy,
                                                          recruitment={"on_return": on_return}))
    assert return_action(cfg, status, shown, via) == expected


def test_reload_resumes(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="rs", reload_policy="resume"))
    assert _consent(client, "rs").status_code == 303
    token = _cookie(client, "rs")
    assert client.get("/study/rs/run").status_code == 200
    _answer_one(client, token)
    again = client.get("/study/rs/run")
    assert again.status_code == 200 and 'data-answered="1"' in again.get_data(as_text=True)
    assert _cookie(client, "rs") == token and len(_people(app)) == 1


def test_reload_restarts_with_fresh_schedule_without_double_counting(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="rt", reload_policy="restart", design="between",
                                   trials_per_participant=4, participants_per_condition=1))
    assert _consent(client, "rt").status_code == 303
    old_token = _cookie(client, "rt")
    client.get("/study/rt/run")
    _answer_one(client, old_token)
    page = client.get("/study/rt/run")  # the reload
    assert page.status_code == 200 and "starts again from the beginning" in page.get_data(as_text=True)
    new_token = _cookie(client, "rt")
    assert new_token != old_token
    people = _people(app)
    assert [(a, s, r) for a, s, _, r in people] == [(1, "restarted", False), (2, "started", True)]
    assert people[0][2] == people[1][2]  # the same between-subject condition
    with app.app_context():
        s = get_session()
        old, new = s.scalars(select(Participant).order_by(Participant.id)).all()
        assert old.external_id == new.external_id == "p1" and new.params == old.params
        assert [t.item_id for t in old.trials] != [t.item_id for t in new.trials]  # a fresh schedule
        assert s.scalar(select(func.count(Response.id))) == 1  # the first attempt's answer is kept
    assert client.get("/api/v1/trial", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    assert _answer_one(client, new_token) == 1
    # the slot was handed over: the one place per condition is still taken once, the other is free
    other = client.post("/api/v1/experiments/rt/participants", json={})
    assert other.status_code == 201
    full = client.post("/api/v1/experiments/rt/participants", json={})
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "study_full"


def test_reload_refused_ends_the_attempt(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="rf", reload_policy="refuse"))
    _consent(client, "rf")
    token = _cookie(client, "rf")
    assert client.get("/study/rf/run").status_code == 200
    assert client.get("/study/rf/run").status_code == 200  # reloaded before any trial: still fine
    _answer_one(client, token)
    ended = client.get("/study/rf/run")
    assert ended.status_code == 410 and "cannot be continued" in ended.get_data(as_text=True)
    assert _people(app)[0][1] == "refused"
    assert client.get("/api/v1/trial", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with app.app_context():
        assert get_session().scalar(select(func.count(Response.id))) == 1  # nothing stored is lost


@pytest.mark.parametrize("policy, on_return, code, attempts", [
    ("resume", "resume", 200, [(1, "started")]),
    ("restart", "resume", 201, [(1, "restarted"), (2, "started")]),
    ("refuse", "resume", 409, [(1, "started")]),
    ("resume", "refuse", 409, [(1, "started")]),
])
def test_same_external_id_at_the_start_link(app, client, tiny_set, tmp_path, policy, on_return, code,  # type: ignore[no-untyped-def]
                                            attempts) -> None:
    register(app, write_experiment(tmp_path, tiny_set, slug="ret", reload_policy=policy,
                                   recruitment={"on_return": on_return}))
    body = {"params": {"PROLIFIC_PID": "same", "STUDY_ID": "s"}}
    first = client.post("/api/v1/experiments/ret/participants", json=body)
    assert first.status_code == 201
    _answer_one(client, first.get_json()["token"])
    again = client.post("/api/v1/experiments/ret/participants", json=body)
    assert again.status_code == code, again.get_json()
    assert [(a, s) for a, s, _, _ in _people(app)] == attempts


def test_returning_after_finishing_sees_completion_again(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    body = {"params": {"PROLIFIC_PID": "done1"}}
    token = client.post("/api/v1/experiments/tiny/participants", json=body).get_json()["token"]
    for _ in range(6):
        _answer_one(client, token)
    back = client.post("/api/v1/experiments/tiny/participants", json=body)
    assert back.status_code == 200 and back.get_json()["resumed"]
    end = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {back.get_json()['token']}"}).get_json()
    assert end["finished"] and end["completion_url"].endswith("cc=TINY123")
    assert len(_people(app)) == 1


def test_consent_form_is_csrf_protected(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/study/tiny/start", data={"consent": "agree", "p_PROLIFIC_PID": "x"})
    assert resp.status_code == 400 and _people(app) == []
    assert CSRF_RE.search(client.get("/study/tiny").get_data(as_text=True))
