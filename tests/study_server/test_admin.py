"""Researcher admin pages: login, CSRF, upload with field errors, status, preview, progress, export."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import func, select

from study_server.db import get_session
from study_server.models import Experiment, Participant
from tests.study_server.conftest import csrf_token, experiment_yaml

ADMIN_GETS = ["/admin/", "/admin/experiments/new", "/admin/experiments/{id}", "/admin/experiments/{id}/export.csv",
              "/admin/experiments/{id}/export.parquet", "/admin/participants/{pid}"]
ADMIN_POSTS = ["/admin/experiments/{id}/status", "/admin/experiments/{id}/preview", "/admin/experiments/new",
               "/admin/logout"]


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_session().scalar(select(func.count(model.id)))


def _one_participant(client) -> str:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/experiments/tiny/participants", json={"external_id": "X1", "params": {}})
    return resp.get_json()["participant_id"]


def test_anonymous_users_are_refused_everywhere(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    pid = _one_participant(client)
    for url in ADMIN_GETS:
        resp = client.get(url.format(id=registered.id, pid=pid))
        assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], url
    token = csrf_token(client)  # a valid CSRF token: the refusal is the login check's
    for url in ADMIN_POSTS:
        resp = client.post(url.format(id=registered.id), data={"csrf_token": token, "status": "closed"})
        assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], url
    with app.app_context():
        exp = get_session().get(Experiment, registered.id)
        assert exp.status == "live"
        assert get_session().scalar(select(func.count(Participant.id)).where(Participant.is_pilot)) == 0


def test_login_wrong_password_and_cookie_flags(client, admin_user) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(client)
    bad = client.post("/admin/login", data={"username": admin_user[0], "password": "nope", "csrf_token": token})
    assert bad.status_code == 401 and "wrong password" in bad.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    good = client.post("/admin/login?next=https://evil.example/x",
                       data={"username": admin_user[0], "password": admin_user[1], "csrf_token": token})
    assert good.status_code == 302 and good.headers["Location"] == "/admin/"  # no open redirect
    cookie = [h for h in good.headers.getlist("Set-Cookie") if h.startswith("session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200


def test_password_is_stored_hashed(app, admin_user) -> None:  # type: ignore[no-untyped-def]
    from study_server.models import User

    with app.app_context():
        stored = get_session().scalars(select(User)).one().password_hash
    assert admin_user[1] not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


def test_posts_without_csrf_token_are_refused(app, admin_client, registered, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    resp = admin_client.post(f"/admin/experiments/{registered.id}/status", data={"status": "closed"})
    assert resp.status_code == 400
    text = yaml.safe_dump(experiment_yaml(tiny_set, slug="other"))
    resp = admin_client.post("/admin/experiments/new", data={"yaml": text})
    assert resp.status_code == 400
    resp = admin_client.post(f"/admin/experiments/{registered.id}/preview", data={"csrf_token": "forged"})
    assert resp.status_code == 400
    with app.app_context():
        assert get_session().get(Experiment, registered.id).status == "live"
    assert _count(app, Experiment) == 1 and _count(app, Participant) == 0
    # the login form itself needs the token too
    assert admin_client.post("/admin/login", data={"username": "researcher", "password": "x"}).status_code == 400


def test_upload_registers_and_lists_versions(app, admin_client, tiny_set) -> None:  # type: ignore[no-untyped-def]
    cfg = experiment_yaml(tiny_set, slug="uploaded")
    token = csrf_token(admin_client, "/admin/experiments/new")
    resp = admin_client.post("/admin/experiments/new", content_type="multipart/form-data", data={
        "csrf_token": token, "config": (io.BytesIO(yaml.safe_dump(cfg).encode()), "uploaded.yaml")})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    cfg["seed"] = 8
    resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": yaml.safe_dump(cfg)})
    assert resp.status_code == 302
    listing = admin_client.get("/admin/").get_data(as_text=True)
    assert "uploaded" in listing and ">v1<" in listing and ">v2<" in listing and "superseded" in listing
    with app.app_context():
        versions = get_session().scalars(select(Experiment).order_by(Experiment.version)).all()
        assert [(e.version, e.status) for e in versions] == [(1, "superseded"), (2, "live")]


UPLOAD_ERRORS = [
    (lambda c: c.update(trials_per_participant="six"), "trials_per_participant"),
    (lambda c: c.update(design="sideways"), "design"),
    (lambda c: c.update(colour="blue"), "colour"),
    (lambda c: c["practice"].update(trials=-1), "practice.trials"),
    (lambda c: c.update(conditions=["reference", "gradcam"]), "conditions"),
    (lambda c: c.update(trials_per_participant=40), "trials_per_participant"),
    (lambda c: c.update(stimuli="/nonexistent/set"), "stimuli"),
    (lambda c: c.update(stimuli="relative/set"), "stimuli"),
]


def test_upload_errors_are_shown_by_field(app, admin_client, tiny_set) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(admin_client, "/admin/experiments/new")
    for edit, field in UPLOAD_ERRORS:
        cfg = experiment_yaml(tiny_set, slug="bad")
        edit(cfg)
        resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": yaml.safe_dump(cfg)})
        assert resp.status_code == 400, field
        page = resp.get_data(as_text=True)
        assert f"<td><code>{field}</code></td>" in page, page[page.find("error-box"):][:800]
    assert _count(app, Experiment) == 0


def test_upload_not_yaml_and_empty(app, admin_client) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(admin_client, "/admin/experiments/new")
    resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": "slug: [unclosed\n"})
    assert resp.status_code == 400 and "not valid YAML" in resp.get_data(as_text=True)
    resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": "  "})
    assert resp.status_code == 400 and "choose a YAML file" in resp.get_data(as_text=True)
    assert _count(app, Experiment) == 0


def test_relative_stimuli_under_stimuli_root(app, admin_client, tiny_set) -> None:  # type: ignore[no-untyped-def]
    app.config["STIMULI_ROOT"] = str(Path(tiny_set).parent)
    cfg = experiment_yaml(tiny_set, slug="rooted", stimuli=Path(tiny_set).name)
    token = csrf_token(admin_client, "/admin/experiments/new")
    resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": yaml.safe_dump(cfg)})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with app.app_context():
        assert get_session().scalars(select(Experiment)).one().stimuli_path == str(Path(tiny_set).resolve())


def test_pause_close_and_reopen(app, admin_client, client, registered) -> None:  # type: ignore[no-untyped-def]
    url = f"/admin/experiments/{registered.id}/status"
    token = csrf_token(admin_client, f"/admin/experiments/{registered.id}")
    start = lambda: client.post("/api/v1/experiments/tiny/participants", json={"params": {}})  # noqa: E731
    for status in ("paused", "closed"):
        assert admin_client.post(url, data={"csrf_token": token, "status": status}).status_code == 303
        resp = start()
        assert resp.status_code == 409 and resp.get_json()["error"]["code"] == f"study_{status}"
        assert "not taking participants" in client.get("/study/tiny").get_data(as_text=True)
    assert admin_client.post(url, data={"csrf_token": token, "status": "bogus"}).status_code == 303
    with app.app_context():
        assert get_session().get(Experiment, registered.id).status == "closed"
    assert admin_client.post(url, data={"csrf_token": token, "status": "live"}).status_code == 303
    assert start().status_code == 201


def test_preview_is_a_pilot_kept_out_of_export_and_progress(app, admin_client, client, registered) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(admin_client, f"/admin/experiments/{registered.id}")
    resp = admin_client.post(f"/admin/experiments/{registered.id}/preview", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/study/tiny/run")
    run = admin_client.get("/study/tiny/run")
    assert run.status_code == 200 and 'id="instructions"' in run.get_data(as_text=True)
    _one_participant(client)
    with app.app_context():
        pilots = get_session().scalars(select(Participant).where(Participant.is_pilot)).all()
        assert len(pilots) == 1 and pilots[0].params == {"preview_by": "researcher"}
    csv = admin_client.get(f"/admin/experiments/{registered.id}/export.csv")
    assert pd.read_csv(io.BytesIO(csv.data))["participant_id"].nunique() == 1
    with_pilot = admin_client.get(f"/admin/experiments/{registered.id}/export.csv?pilot=1")
    assert pd.read_csv(io.BytesIO(with_pilot.data))["participant_id"].nunique() == 2
    page = admin_client.get(f"/admin/experiments/{registered.id}").get_data(as_text=True)
    assert '<td class="started">1</td>' in page


def test_api_pilot_flag_needs_a_login(client, admin_client, registered) -> None:  # type: ignore[no-untyped-def]
    fresh = client.application.test_client()  # no login cookie
    resp = fresh.post("/api/v1/experiments/tiny/participants", json={"params": {}, "pilot": True})
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "pilot_forbidden"
    assert admin_client.post("/api/v1/experiments/tiny/participants",
                             json={"params": {}, "pilot": True}).status_code == 201


def test_export_downloads_match_the_service(app, admin_client, client, registered) -> None:  # type: ignore[no-untyped-def]
    from study_server.services.export import export_frame

    for i in range(2):
        tok = client.post("/api/v1/experiments/tiny/participants", json={"external_id": f"E{i}"}).get_json()["token"]
        for _ in range(6):
            t = client.get("/api/v1/trial", headers={"Authorization": f"Bearer {tok}"}).get_json()["trial"]
            client.post(f"/api/v1/trials/{t['id']}/response", headers={"Authorization": f"Bearer {tok}"},
                        json={"choice": 1, "rt_ms": 321.5})
    csv = admin_client.get(f"/admin/experiments/{registered.id}/export.csv")
    assert csv.status_code == 200 and "attachment" in csv.headers["Content-Disposition"]
    pq = admin_client.get(f"/admin/experiments/{registered.id}/export.parquet")
    assert pq.status_code == 200 and pq.data[:4] == b"PAR1"
    with app.app_context():
        s = get_session()
        expected = export_frame(s, [s.get(Experiment, registered.id)])
    from_csv = pd.read_csv(io.BytesIO(csv.data))
    from_pq = pd.read_parquet(io.BytesIO(pq.data))
    assert len(from_csv) == len(from_pq) == len(expected) == 12
    assert list(from_pq["chosen_side"]) == list(expected["chosen_side"]) == [1] * 12
    assert list(from_csv["rt_ms"]) == [321.5] * 12
    assert admin_client.get(f"/admin/experiments/{registered.id}/export.xlsx").status_code == 404


def test_participant_detail(admin_client, client, registered) -> None:  # type: ignore[no-untyped-def]
    pid = _one_participant(client)
    page = admin_client.get(f"/admin/participants/{pid}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "X1" in text and text.count("<tr><td>") >= 6 and "incomplete" in text
    assert admin_client.get("/admin/participants/nobody").status_code == 404
    assert admin_client.get("/admin/experiments/9999").status_code == 404


def test_uploads_stay_inside_stimuli_root(app, admin_client, tiny_set, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With STIMULI_ROOT set, an upload can name no stimulus folder or text file outside it:
    not by an absolute path, not by '..', not through a symbolic link."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(tiny_set, root / "tiny")
    app.config["STIMULI_ROOT"] = str(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("a file the server may read but participants must not see")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    cases = [
        ({"stimuli": str(outside)}, "stimuli"),
        ({"stimuli": "tiny/../../outside"}, "stimuli"),
        ({"stimuli": "escape"}, "stimuli"),
        ({"text": {"consent": str(outside / "secret.md")}}, "text.consent"),
        ({"text": {"debrief": "escape/secret.md"}}, "text.debrief"),
    ]
    token = csrf_token(admin_client, "/admin/experiments/new")
    for edit, field in cases:
        cfg = experiment_yaml(root / "tiny", slug="escape", stimuli="tiny")
        for key, value in edit.items():
            if isinstance(value, dict):
                cfg.setdefault(key, {}).update(value)
            else:
                cfg[key] = value
        resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": yaml.safe_dump(cfg)})
        assert resp.status_code == 400, (field, resp.status_code)
        page = resp.get_data(as_text=True)
        assert f"<td><code>{field}</code></td>" in page and "outside STIMULI_ROOT" in page, field
        assert "a file the server may read" not in page
    assert _count(app, Experiment) == 0
    # inside the root is still fine
    cfg = experiment_yaml(root / "tiny", slug="inside", stimuli="tiny")
    resp = admin_client.post("/admin/experiments/new", data={"csrf_token": token, "yaml": yaml.safe_dump(cfg)})
    assert resp.status_code == 302, resp.get_data(as_text=True)
