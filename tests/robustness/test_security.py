"""One test per item of docs/security.md (on SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from .conftest import auth, current, snapshot, start

PASSWORD = "correct horse battery staple"


def _csrf(client: Any, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert found, f"no csrf_token field on {url}"
    return found.group(1)


def _make_user(app: Any, username: str = "researcher") -> None:
    from werkzeug.security import generate_password_hash

    from study_server.db import get_session
    from study_server.models import User

    with app.app_context():
        s = get_session()
        s.add(User(username=username, password_hash=generate_password_hash(PASSWORD)))
        s.commit()


def _app(database_url: str, tmp_path: Path, **config: Any) -> Any:
    from study_server import create_app

    base = {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret", "REQUEST_LOG": False,
            "RATELIMIT_ENABLED": False}
    base.update(config)
    return create_app(base)


# 1. admin authentication --------------------------------------------------------------------


def test_admin_pages_need_a_login(app, client) -> None:  # type: ignore[no-untyped-def]
    _make_user(app)
    resp = client.get("/admin/")
    assert resp.status_code in (302, 401) and "/admin/login" in resp.headers.get("Location", "/admin/login")
    token = _csrf(client, "/admin/login")
    bad = client.post("/admin/login", data={"username": "researcher", "password": "nope", "csrf_token": token})
    assert bad.status_code == 401
    assert client.get("/admin/").status_code != 200
    good = client.post("/admin/login", data={"username": "researcher", "password": PASSWORD, "csrf_token": token})
    assert good.status_code in (302, 303)
    assert client.get("/admin/").status_code == 200


# 2. password hashing ------------------------------------------------------------------------


def test_passwords_are_stored_salted_and_hashed(app) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.security import check_password_hash

    from study_server.db import get_session
    from study_server.models import User

    _make_user(app, "a")
    _make_user(app, "b")
    with app.app_context():
        a, b = (get_session().scalars(select(User).where(User.username == n)).one() for n in ("a", "b"))
        assert PASSWORD not in a.password_hash
        assert a.password_hash.split(":", 1)[0] in ("scrypt", "pbkdf2")
        assert a.password_hash != b.password_hash  # salted
        assert check_password_hash(a.password_hash, PASSWORD) and not check_password_hash(a.password_hash, "x")


def test_cli_create_user_hashes_the_password(database_url: str) -> None:
    from tests.conftest import run_cli

    done = run_cli("admin", "create-user", "cliuser", "--database-url", database_url,
                   env={"INTERP_STUDY_ADMIN_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    from study_server.db import make_engine
    from sqlalchemy import text

    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM user_account WHERE username = 'cliuser'")).scalar_one()
        conn.rollback()
    engine.dispose()
    assert PASSWORD not in stored and stored.split(":", 1)[0] in ("scrypt", "pbkdf2")


# 3. CSRF --------------------------------------------------------------------------------------


def test_form_posts_need_a_csrf_token(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    resp = client.post("/study/tiny/start", data={"consent": "agree"})
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)
    assert snapshot(app) == before
    _make_user(app)
    resp = client.post("/admin/login", data={"username": "researcher", "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/admin/").status_code != 200


def test_api_takes_no_cookie_authority(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """The API is CSRF-exempt because only an Authorization header (never a cookie) authenticates it."""
    token = _csrf(client, "/study/tiny")
    resp = client.post("/study/tiny/start", data={"consent": "agree", "csrf_token": token})
    assert resp.status_code in (302, 303)
    assert any(c.key.startswith("isp_") for c in client._cookies.values())
    # the participant cookie alone does not work on the API
    assert client.get("/api/v1/trial").status_code == 401


# 4. session cookie flags -------------------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(database_url: str, tmp_path: Path, secure: bool) -> None:
    app = _app(database_url, tmp_path, SESSION_COOKIE_SECURE=secure)
    client = app.test_client()
    _make_user(app)
    token = _csrf(client, "/admin/login")
    resp = client.post("/admin/login", data={"username": "researcher", "password": PASSWORD, "csrf_token": token})
    cookies = [v for k, v in resp.headers.items() if k.lower() == "set-cookie" and v.startswith("session=")]
    assert cookies, resp.headers
    flags = cookies[-1].lower()
    assert "httponly" in flags and "samesite=lax" in flags
    assert ("secure" in flags.split("; ")) is secure
    app.extensions["db_engine"].dispose()


def test_secure_cookies_from_environment(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERP_STUDY_SECURE_COOKIES", "1")
    app = _app(database_url, tmp_path)
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["SESSION_COOKIE_HTTPONLY"] is True
    app.extensions["db_engine"].dispose()


# 5. security headers ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/study/tiny", "/api/v1/trial", "/api/v1/nothing", "/no-such-page",
                                  "/healthz"])
def test_security_headers_everywhere(client, registered, path: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    if path.startswith("/api/"):
        assert resp.headers["Cache-Control"] == "no-store"


# 6. rate limits -----------------------------------------------------------------------------


def test_start_links_are_rate_limited(database_url: str, tmp_path: Path, experiment_file: Path) -> None:
    from study_server.db import get_session
    from study_server.services.experiments import register_experiment

    app = _app(database_url, tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_START="3 per minute")
    with app.app_context():
        register_experiment(get_session(), experiment_file)
    client = app.test_client()
    codes = [client.post("/api/v1/experiments/tiny/participants", json={"params": {}}).status_code for _ in range(3)]
    assert codes == [201, 201, 201]
    before = snapshot(app)
    over = client.post("/api/v1/experiments/tiny/participants", json={"params": {}})
    assert over.status_code == 429 and over.get_json()["error"]["code"] == "too_many_requests"
    assert int(over.headers["Retry-After"]) > 0
    # the start form shares the limit
    token = _csrf(client, "/study/tiny")
    assert client.post("/study/tiny/start", data={"consent": "agree", "csrf_token": token}).status_code == 429
    assert snapshot(app) == before
    # another client address has its own budget
    other = client.post("/api/v1/experiments/tiny/participants", json={"params": {}},
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 201
    app.extensions["db_engine"].dispose()


def test_admin_login_is_rate_limited(database_url: str, tmp_path: Path) -> None:
    app = _app(database_url, tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3 per minute")
    client = app.test_client()
    _make_user(app)
    token = _csrf(client, "/admin/login")
    wrong = {"username": "researcher", "password": "guess", "csrf_token": token}
    assert [client.post("/admin/login", data=wrong).status_code for _ in range(3)] == [401, 401, 401]
    right = {"username": "researcher", "password": PASSWORD, "csrf_token": token}
    assert client.post("/admin/login", data=right).status_code == 429  # even the right password waits
    assert client.get("/admin/login").status_code == 200  # only POSTs count
    app.extensions["db_engine"].dispose()


def test_rate_limits_off_when_disabled(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    assert app.config["RATELIMIT_ENABLED"] is False
    codes = {client.post("/api/v1/experiments/tiny/participants", json={"params": {}}).status_code for _ in range(25)}
    assert codes == {201}


# 7. participant isolation -------------------------------------------------------------------


def test_participants_are_isolated(app, client, two_participants) -> None:  # type: ignore[no-untyped-def]
    a, b = two_participants["a"], two_participants["b"]
    b_trial = two_participants["b_trial"]
    before = snapshot(app)
    assert client.post(f"/api/v1/trials/{b_trial}/response", json={"choice": 0, "rt_ms": 5},
                       headers=auth(a)).status_code == 404
    assert client.post("/api/v1/events", json={"type": "blur", "trial_id": b_trial}, headers=auth(a)).status_code == 404
    assert snapshot(app) == before
    assert current(client, a)["trial"]["id"] == two_participants["a_trial"]
    body = json.dumps(current(client, a))
    assert b not in body and str(b_trial) not in re.findall(r'"id": (\d+)', body)


# 8. no answer leakage -------------------------------------------------------------------------


def test_no_answer_reaches_the_client_before_it_is_stored(app, client, registered, tiny_set: Path) -> None:  # type: ignore[no-untyped-def]
    token = start(client)["token"]
    data = current(client, token)
    text = json.dumps(data)
    for word in ("correct", "condition", "family", "left_option", "meta"):
        assert word not in text
    assert client.get(f"/media/{registered.id}/manifest.json").status_code == 404
    assert client.get(f"/media/{registered.id}/images/../manifest.json").status_code == 404
    reply = client.post(f"/api/v1/trials/{data['trial']['id']}/response", json={"choice": 0, "rt_ms": 5},
                        headers=auth(token)).get_json()
    assert "feedback" not in reply and "correct" not in json.dumps(reply)  # main trials: no feedback at all


# 9. no stack traces to clients -------------------------------------------------------------


def test_internal_errors_show_no_stack_trace(database_url: str, tmp_path: Path) -> None:
    app = _app(database_url, tmp_path)  # not TESTING: production error handling

    def boom() -> str:
        raise RuntimeError("secret internal detail /etc/shadow")

    app.add_url_rule("/api/v1/_boom", "api_boom", boom)
    app.add_url_rule("/_boom", "page_boom", boom)
    client = app.test_client()
    api = client.get("/api/v1/_boom")
    assert api.status_code == 500
    assert api.get_json() == {"error": {"code": "internal", "message": "internal server error"}}
    page = client.get("/_boom")
    assert page.status_code == 500
    for resp in (api, page):
        body = resp.get_data(as_text=True)
        assert "Traceback" not in body and "secret internal detail" not in body and "RuntimeError" not in body
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    app.extensions["db_engine"].dispose()


# 10. secrets only from the environment --------------------------------------------------


def test_secret_key_from_environment(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from study_server import create_app

    monkeypatch.setenv("SECRET_KEY", "from-the-environment-0123456789")
    monkeypatch.setenv("INTERP_STUDY_INSTANCE", str(tmp_path / "inst"))
    app = create_app({"DATABASE_URL": database_url})
    assert app.config["SECRET_KEY"] == "from-the-environment-0123456789"
    assert not (tmp_path / "inst" / "secret_key").exists()
    app.extensions["db_engine"].dispose()


def test_demo_fallback_key_is_random_private_and_stable(database_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from study_server import create_app

    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("INTERP_STUDY_SECRET_KEY", raising=False)
    keys = []
    for name in ("one", "two", "one"):
        monkeypatch.setenv("INTERP_STUDY_INSTANCE", str(tmp_path / name))
        app = create_app({"DATABASE_URL": database_url})
        keys.append(app.config["SECRET_KEY"])
        app.extensions["db_engine"].dispose()
        path = tmp_path / name / "secret_key"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(keys[0]) >= 32 and keys[0] != keys[1] and keys[0] == keys[2]


def test_no_secret_literals_in_the_server_code() -> None:
    root = Path(__file__).resolve().parents[2] / "study_server"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"SECRET_KEY\s*[=:]\s*['\"]", text), path
        assert not re.search(r"postgresql://[^@\s'\"]+:[^@\s'\"]+@", text), path  # no passwords in URLs
