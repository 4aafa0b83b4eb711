"""The participant API exactly as DESIGN.md's table, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from study_server.db import get_session
from study_server.models import Event, Participant, Response, Trial


def _start(client, slug: str = "tiny", external_id: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = client.post(f"/api/v1/experiments/{slug}/participants", json={"external_id": external_id, "params": {}})
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _trial(client, token: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/trial", headers=_auth(token))
    assert resp.status_code == 200
    return resp.get_json()


def _answer(client, token: str, trial_id: int, choice: int = 0, rt: float = 500.0):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/trials/{trial_id}/response", headers=_auth(token), json={"choice": choice, "rt_ms": rt})


def _snapshot(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        s = get_session()
        return {m.__name__: s.scalar(select(func.count(m.id))) for m in (Participant, Trial, Response, Event)}


def test_start_and_resume_same_external_id(client, registered) -> None:  # type: ignore[no-untyped-def]
    first = client.post("/api/v1/experiments/tiny/participants", json={"external_id": "P1", "params": {"STUDY_ID": "s"}})
    assert first.status_code == 201 and first.get_json()["resumed"] is False
    again = client.post("/api/v1/experiments/tiny/participants", json={"external_id": "P1", "params": {}})
    assert again.status_code == 200
    body = again.get_json()
    assert body["resumed"] is True and body["participant_id"] == first.get_json()["participant_id"]
    assert _trial(client, body["token"])["trial"]["position"] == 1


def test_trial_shape_and_no_answer_leak(client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)["token"]
    data = _trial(client, token)
    trial = data["trial"]
    assert set(trial) >= {"id", "position", "total", "kind", "prompt", "context", "options"}
    assert trial["total"] == 6 and len(trial["options"]) == 2
    text = json.dumps(data)
    assert "correct" not in text and "condition" not in text and "reference/" not in text
    assert all(o["image"].startswith("/media/") for o in trial["options"])
    img = client.get(trial["options"][0]["image"])
    assert img.status_code == 200 and "immutable" in img.headers["Cache-Control"]
    assert client.get(f"/media/{registered.id}/manifest.json").status_code == 404
    assert client.get(f"/media/{registered.id}/images/../manifest.json").status_code == 404


def test_resume_after_three_trials_gets_trial_four(client, registered) -> None:  # type: ignore[no-untyped-def]
    started = _start(client, external_id="R1")
    for _ in range(3):
        t = _trial(client, started["token"])["trial"]
        assert _answer(client, started["token"], t["id"]).status_code == 200
    back = _start(client, external_id="R1")
    assert back["resumed"] and _trial(client, back["token"])["trial"]["position"] == 4


def test_duplicate_response_returns_first_and_stores_one(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)["token"]
    t = _trial(client, token)["trial"]
    first = _answer(client, token, t["id"], choice=0, rt=420)
    second = _answer(client, token, t["id"], choice=1, rt=999)
    assert first.status_code == second.status_code == 200
    assert first.get_json() == {"stored": True, "duplicate": False}
    assert second.get_json() == {"stored": True, "duplicate": True}
    with app.app_context():
        rows = get_session().scalars(select(Response).where(Response.trial_id == t["id"])).all()
        assert len(rows) == 1 and rows[0].chosen_side == 0 and rows[0].rt_ms == 420


def test_finish_reports_completion_url(client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)["token"]
    for _ in range(6):
        t = _trial(client, token)["trial"]
        assert _answer(client, token, t["id"]).status_code == 200
    end = _trial(client, token)
    assert end == {"trial": None, "finished": True,
                   "completion_url": "https://app.prolific.com/submissions/complete?cc=TINY123",
                   "completion_code": None, "completion_form": None}


def test_practice_feedback_only_on_practice(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stimuli_builder.tiny import write_tiny_experiment
    from study_server.services.experiments import register_experiment

    path = write_tiny_experiment(tmp_path / "p", tiny_set, slug="prac", trials=4, practice=2)
    with app.app_context():
        register_experiment(get_session(), path)
    token = _start(client, "prac")["token"]
    kinds = []
    for _ in range(6):
        t = _trial(client, token)["trial"]
        reply = _answer(client, token, t["id"]).get_json()
        kinds.append(t["kind"])
        assert ("feedback" in reply) == (t["kind"] == "practice")
        if t["kind"] == "practice":
            assert isinstance(reply["feedback"]["correct"], bool)
    assert kinds[:2] == ["practice", "practice"]


@pytest.mark.parametrize("case", ["no_token", "bad_token", "wrong_types", "missing_field", "extra_field",
                                  "not_json", "list_body", "huge_body", "unknown_trial", "other_participant",
                                  "not_current", "bad_choice", "negative_rt", "nan_rt"])
def test_bad_requests_are_4xx_and_change_nothing(app, client, registered, case: str) -> None:  # type: ignore[no-untyped-def]
    me = _start(client)["token"]
    other = _start(client)["token"]
    mine = _trial(client, me)["trial"]["id"]
    theirs = _trial(client, other)["trial"]["id"]
    before = _snapshot(app)
    url = f"/api/v1/trials/{mine}/response"
    good = {"choice": 0, "rt_ms": 300}
    h = _auth(me)
    if case == "no_token":
        resp = client.post(url, json=good)
        expected = 401
    elif case == "bad_token":
        resp = client.post(url, json=good, headers=_auth("forged"))
        expected = 401
    elif case == "wrong_types":
        resp = client.post(url, json={"choice": "left", "rt_ms": "fast"}, headers=h)
        expected = 400
    elif case == "missing_field":
        resp = client.post(url, json={"choice": 0}, headers=h)
        expected = 400
    elif case == "extra_field":
        resp = client.post(url, json={**good, "correct": True}, headers=h)
        expected = 400
    elif case == "not_json":
        resp = client.post(url, data="choice=0", headers=h, content_type="text/plain")
        expected = 400
    elif case == "list_body":
        resp = client.post(url, json=[0, 300], headers=h)
        expected = 400
    elif case == "huge_body":
        resp = client.post(url, data=json.dumps({**good, "pad": "x" * 70000}), headers=h,
                           content_type="application/json")
        expected = 413
    elif case == "unknown_trial":
        resp = client.post("/api/v1/trials/987654/response", json=good, headers=h)
        expected = 404
    elif case == "other_participant":
        resp = client.post(f"/api/v1/trials/{theirs}/response", json=good, headers=h)
        expected = 404
    elif case == "not_current":
        resp = client.post(f"/api/v1/trials/{mine + 1}/response", json=good, headers=h)
        expected = 409
    elif case == "bad_choice":
        resp = client.post(url, json={"choice": 2, "rt_ms": 300}, headers=h)
        expected = 400
    elif case == "negative_rt":
        resp = client.post(url, json={"choice": 0, "rt_ms": -5}, headers=h)
        expected = 400
    else:
        resp = client.post(url, data='{"choice": 0, "rt_ms": NaN}', headers=h, content_type="application/json")
        expected = 400
    assert resp.status_code == expected, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    assert err["code"] and err["message"]
    assert _snapshot(app) == before


def test_other_participants_trial_is_invisible(client, registered) -> None:  # type: ignore[no-untyped-def]
    a = _start(client)["token"]
    b = _start(client)["token"]
    ta = _trial(client, a)["trial"]
    tb = _trial(client, b)["trial"]
    assert ta["id"] != tb["id"]
    assert client.post("/api/v1/events", headers=_auth(a), json={"type": "blur", "trial_id": tb["id"]}).status_code == 404


def test_events_stored(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = _start(client)["token"]
    t = _trial(client, token)["trial"]
    resp = client.post("/api/v1/events", headers=_auth(token), json={"type": "blur", "trial_id": t["id"], "data": {"x": 1}})
    assert resp.status_code == 204
    with app.app_context():
        ev = get_session().scalars(select(Event)).one()
        assert ev.type == "blur" and ev.data == {"x": 1}


def test_unknown_experiment_and_unknown_route_are_json_404(client, registered) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/experiments/nope/participants", json={"external_id": None, "params": {}})
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "unknown_experiment"
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/trials/1/response").status_code == 405


def test_stored_schedule_rederives_from_seed(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    from study_server.config_schema import ExperimentConfig
    from study_server.services.experiments import item_refs
    from study_server.services.scheduling import build_schedule

    for _ in range(3):
        _start(client)
    with app.app_context():
        s = get_session()
        cfg = ExperimentConfig.model_validate(registered.config)
        refs = item_refs(s, registered.id)
        for p in s.scalars(select(Participant)):
            stored = [(t.position, t.block, t.kind, t.item_id, t.left_option) for t in p.trials]
            derived = [(t.position, t.block, t.kind, t.item_id, t.left_option)
                       for t in build_schedule(cfg, refs, p.ordinal, p.seed, p.between_condition)]
            assert stored == derived


def test_healthz(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_database_failure_is_a_503_without_details(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """A database that fails under the server answers 503 JSON with no details. PostgreSQL:
    its connections are killed (as by a restart) and the retry succeeds on a fresh one.
    SQLite: a table is gone."""
    from sqlalchemy import text

    token = _start(client)["token"]
    assert _trial(client, token)["trial"]["position"] == 1  # the pool now holds a live connection
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite"):
        with app.app_context():
            s = get_session()
            s.execute(text("DROP TABLE event"))
            s.commit()
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        with psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False),
                             autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    resp = client.post("/api/v1/events", headers=_auth(token), json={"type": "blur"})
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"]["code"] == "database_unavailable"
    assert "event" not in body["error"]["message"] and "Traceback" not in resp.get_data(as_text=True)
    if not url.startswith("sqlite"):
        assert client.post("/api/v1/events", headers=_auth(token), json={"type": "blur"}).status_code == 204


def test_lone_surrogates_are_refused_and_store_nothing(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(app)
    body = '{"external_id": null, "params": {"PROLIFIC_PID": "\\ud800"}}'
    resp = client.post("/api/v1/experiments/tiny/participants", data=body, content_type="application/json")
    assert resp.status_code == 400 and "surrogate" in resp.get_json()["error"]["message"]
    assert _snapshot(app) == before
    token = _start(client)["token"]
    before = _snapshot(app)
    resp = client.post("/api/v1/events", headers=_auth(token), data='{"type": "blur", "data": {"k": "\\udfff"}}',
                       content_type="application/json")
    assert resp.status_code == 400
    assert _snapshot(app) == before


def test_same_external_id_resumes_across_versions(app, client, registered, experiment_file) -> None:  # type: ignore[no-untyped-def]
    from study_server.services.experiments import register_experiment

    first = client.post("/api/v1/experiments/tiny/participants", json={"external_id": "V1", "params": {}})
    assert first.status_code == 201
    experiment_file.write_text(experiment_file.read_text().replace("seed: 7", "seed: 9"))
    with app.app_context():
        assert register_experiment(get_session(), experiment_file).experiment.version == 2
    again = client.post("/api/v1/experiments/tiny/participants", json={"external_id": "V1", "params": {}})
    assert again.status_code == 200 and again.get_json()["resumed"] is True
    assert again.get_json()["participant_id"] == first.get_json()["participant_id"]
    with app.app_context():
        assert get_session().scalar(select(func.count(Participant.id)).where(Participant.external_id == "V1")) == 1


def test_practice_feedback_follows_the_config(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stimuli_builder.tiny import write_tiny_experiment
    from study_server.services.experiments import register_experiment

    path = write_tiny_experiment(tmp_path / "nf", tiny_set, slug="nofb", trials=2, practice=2)
    path.write_text(path.read_text().replace("feedback: true", "feedback: false"))
    with app.app_context():
        register_experiment(get_session(), path)
    token = _start(client, "nofb")["token"]
    for _ in range(4):
        t = _trial(client, token)["trial"]
        reply = _answer(client, token, t["id"]).get_json()
        assert "feedback" not in reply


def test_an_ended_attempt_is_not_finished_by_a_late_answer(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """A restart or timeout that lands between the read and the write of a response keeps its status."""
    from study_server.services import participants as svc

    token = _start(client)["token"]
    for _ in range(5):
        t = _trial(client, token)["trial"]
        _answer(client, token, t["id"])
    last = _trial(client, token)["trial"]
    with app.app_context():
        session = get_session()
        participant, sched = svc.participant_and_schedule(session, token)
        pid = participant.id
        session.rollback()
        with app.app_context():  # another request ends the attempt meanwhile
            other = get_session()
            other.get(Participant, pid).status = "restarted"
            other.commit()
        result = svc.record_response(session, participant, last["id"], 0, 300.0, schedule=sched)
        assert result.finished and not result.duplicate
        session.expire_all()
        assert session.get(Participant, pid).status == "restarted"


def test_confidence_required_when_the_experiment_asks(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stimuli_builder.tiny import write_tiny_experiment
    from study_server.services.experiments import register_experiment

    path = write_tiny_experiment(tmp_path / "cf", tiny_set, slug="conf", trials=2, extra="confidence_rating: true\n")
    with app.app_context():
        register_experiment(get_session(), path)
    token = _start(client, "conf")["token"]
    t = _trial(client, token)["trial"]
    before = _snapshot(app)
    missing = _answer(client, token, t["id"])
    assert missing.status_code == 400 and "confidence" in missing.get_json()["error"]["message"]
    assert _snapshot(app) == before
    ok = client.post(f"/api/v1/trials/{t['id']}/response", headers=_auth(token),
                     json={"choice": 0, "rt_ms": 300, "confidence": 6})
    assert ok.status_code == 200


def test_client_time_is_stored_and_exported(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """The page sends its own clock with each answer (DESIGN: client and server timestamps)."""
    import datetime as dt

    from study_server.services.export import export_frame

    token = _start(client)["token"]
    t = _trial(client, token)["trial"]
    sent = 1_790_000_000_123.0  # ms since the epoch
    resp = client.post(f"/api/v1/trials/{t['id']}/response", headers=_auth(token),
                       json={"choice": 1, "rt_ms": 640.5, "client_time": sent})
    assert resp.status_code == 200
    before = _snapshot(app)
    for bad in (-1, 1e15, "yesterday", float("nan")):
        body = json.dumps({"choice": 0, "rt_ms": 5, "client_time": bad})  # NaN: the non-standard literal
        nxt = _trial(client, token)["trial"]
        refused = client.post(f"/api/v1/trials/{nxt['id']}/response", headers=_auth(token), data=body,
                              content_type="application/json")
        assert refused.status_code == 400, bad
        if bad == bad:  # NaN is refused by the JSON guard before the fields are read
            assert refused.get_json()["error"]["message"].startswith("client_time")
    assert _snapshot(app) == before
    with app.app_context():
        s = get_session()
        assert s.scalar(select(Response.client_time).where(Response.trial_id == t["id"])) == sent
        frame = export_frame(s, [registered])
    row = frame[frame["position"] == 1].iloc[0]
    assert row["client_time"] == dt.datetime.fromtimestamp(sent / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")
    assert frame[frame["position"] == 2]["client_time"].isna().all()


@pytest.mark.parametrize("body", [{"choice": True, "rt_ms": 500}, {"choice": 1, "rt_ms": True},
                                  {"choice": "1", "rt_ms": 500}, {"choice": 0, "rt_ms": "500"},
                                  {"choice": 0, "rt_ms": 500, "confidence": "3"},
                                  {"choice": 0, "rt_ms": 500, "client_time": False}])
def test_answers_take_json_numbers_not_booleans_or_strings(app, client, registered, body) -> None:  # type: ignore[no-untyped-def]
    """``true`` is not a choice of 1 and ``"500"`` is not a response time: a client bug is
    refused with the field's name instead of being stored as a plausible answer."""
    token = _start(client)["token"]
    t = _trial(client, token)["trial"]
    before = _snapshot(app)
    resp = client.post(f"/api/v1/trials/{t['id']}/response", headers=_auth(token), json=body)
    assert resp.status_code == 400
    field = [k for k, v in body.items() if isinstance(v, (bool, str))][0]
    assert resp.get_json()["error"]["message"].startswith(f"{field}: ")
    assert _snapshot(app) == before
