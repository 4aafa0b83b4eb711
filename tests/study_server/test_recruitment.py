"""Recruitment platforms through the real pages and API: Prolific, MTurk, SONA, anonymous links."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from study_server.db import get_session
from study_server.models import Participant
from study_server.services.recruitment import mturk_submit_url
from tests.study_server.conftest import register, write_experiment

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def _form(client, url: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(HIDDEN.findall(client.get(url).get_data(as_text=True)))


def _count(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_session().scalar(select(func.count(Participant.id)))


def _finish(client, token: str) -> dict:  # type: ignore[no-untyped-def]
    h = {"Authorization": f"Bearer {token}"}
    while True:
        data = client.get("/api/v1/trial", headers=h).get_json()
        if data.get("finished"):
            return data
        client.post(f"/api/v1/trials/{data['trial']['id']}/response", headers=h, json={"choice": 0, "rt_ms": 500})


def _token(client, slug: str) -> str:  # type: ignore[no-untyped-def]
    return client.get_cookie(f"isp_{slug}", path=f"/study/{slug}").value


def test_prolific_params_recorded_and_completion_code(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="pro", recruitment={
        "platform": "prolific", "completion_url": None, "completion_code": "C0DE42"}))
    form = _form(client, "/study/pro?PROLIFIC_PID=abc&STUDY_ID=st&SESSION_ID=se&evil=1")
    assert {k for k in form if k.startswith("p_")} == {"p_PROLIFIC_PID", "p_STUDY_ID", "p_SESSION_ID"}
    assert _count(app) == 0  # the GET changed nothing
    assert client.post("/study/pro/start", data={**form, "consent": "agree"}).status_code == 303
    with app.app_context():
        p = get_session().scalars(select(Participant)).one()
        assert p.external_id == "abc" and p.params == {"PROLIFIC_PID": "abc", "STUDY_ID": "st", "SESSION_ID": "se"}
    end = _finish(client, _token(client, "pro"))
    assert end["completion_url"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    assert end["completion_code"] == "C0DE42" and end["completion_form"] is None


def test_mturk_preview_shows_no_trials_and_cannot_start(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="mt", recruitment={
        "platform": "mturk", "completion_url": None, "completion_code": "MT1"}))
    preview = client.get("/study/mt?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=h1")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "This is a preview" in page and 'id="agree"' not in page
    assert "frame-ancestors https://*.mturk.com" in preview.headers["Content-Security-Policy"]
    token = HIDDEN.findall(client.get("/study/mt").get_data(as_text=True))[0][1]
    resp = client.post("/study/mt/start", data={"csrf_token": token, "consent": "agree",
                                                "p_assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"})
    assert resp.status_code == 400 and "preview" in resp.get_data(as_text=True)
    api = client.post("/api/v1/experiments/mt/participants", json={"params": {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}})
    assert api.status_code == 400 and api.get_json()["error"]["code"] == "mturk_preview"
    assert _count(app) == 0


def test_mturk_accepted_hit_completes_by_form_post(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="mt", recruitment={
        "platform": "mturk", "completion_url": None}))
    query = "assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    form = _form(client, f"/study/mt?{query}")
    assert client.post("/study/mt/start", data={**form, "consent": "agree"}).status_code == 303
    with app.app_context():
        p = get_session().scalars(select(Participant)).one()
        assert p.external_id == "W1" and p.params["hitId"] == "H1" and p.params["assignmentId"] == "A1"
    end = _finish(client, _token(client, "mt"))
    assert end["completion_url"] is None
    assert end["completion_form"] == {"action": "https://workersandbox.mturk.com/mturk/externalSubmit",
                                      "fields": {"assignmentId": "A1", "participant": p.public_id}}


def test_mturk_submit_host_must_be_mturk() -> None:
    assert mturk_submit_url("https://www.mturk.com") == "https://www.mturk.com/mturk/externalSubmit"
    assert mturk_submit_url("https://workersandbox.mturk.com/") == "https://workersandbox.mturk.com/mturk/externalSubmit"
    for bad in ("http://www.mturk.com", "https://evil.example", "https://mturk.com.evil.example", "", None,
                "javascript:alert(1)"):
        assert mturk_submit_url(bad) is None


def test_sona_id_param_and_url_template(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="sona", recruitment={
        "platform": "sona", "id_param": "survey_code",
        "completion_url": "https://uni.sona-systems.com/webstudy_credit.aspx?experiment_id=9&survey_code={external_id}"}))
    form = _form(client, "/study/sona?survey_code=12345")
    client.post("/study/sona/start", data={**form, "consent": "agree"})
    end = _finish(client, _token(client, "sona"))
    assert end["completion_url"].endswith("experiment_id=9&survey_code=12345")


def test_anonymous_links_record_nothing(app, client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register(app, write_experiment(tmp_path, tiny_set, slug="anon", recruitment={
        "platform": "anonymous", "completion_url": None}))
    for _ in range(2):
        form = _form(client, "/study/anon?PROLIFIC_PID=zzz&id=1")
        assert not [k for k in form if k.startswith("p_")]
        client.post("/study/anon/start", data={**form, "consent": "agree"})
    with app.app_context():
        people = get_session().scalars(select(Participant)).all()
        assert [(p.external_id, p.params) for p in people] == [(None, {}), (None, {})]


def test_decline_stores_only_the_decline(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    form = _form(client, "/study/tiny?PROLIFIC_PID=nope&STUDY_ID=s")
    resp = client.post("/study/tiny/start", data={**form, "consent": "decline"})
    assert resp.status_code == 200 and "You declined" in resp.get_data(as_text=True)
    with app.app_context():
        p = get_session().scalars(select(Participant)).one()
        assert (p.status, p.external_id, p.params, p.trials) == ("declined", None, {}, [])
    assert client.get_cookie("isp_tiny", path="/study/tiny") is None
