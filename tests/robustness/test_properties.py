"""Property-based tests of the participant API against malformed and hostile requests.

Every property: no 5xx, and a request that is refused (4xx) changes nothing stored
(``snapshot`` digests every participant, trial, response and event row). Runs on SQLite and,
with TEST_DATABASE_URL, on PostgreSQL, through the Flask test client. Examples are bounded
(``max_examples``) so the suite stays fast.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from .conftest import auth, current, snapshot, start

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# text with every unicode category, lone surrogates and NUL included
odd_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SQLISH = ["'; DROP TABLE response; --", "1 OR 1=1", "\" OR \"\"=\"", "'); DELETE FROM participant; --",
          "x' UNION SELECT token_hash FROM participant --", "%", "_", "\\", "$1", ":name", "%(x)s", "?",
          "1; SELECT pg_sleep(5)", "NULL", "null", "\u0000", "‮", "\ufeff", "😀" * 20, "a" * 300]
sqlish = st.one_of(st.sampled_from(SQLISH), st.builds(lambda a, b: a + b, st.sampled_from(SQLISH), odd_text))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=True, allow_infinity=True), odd_text, sqlish)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(odd_text, st.sampled_from(
        ["choice", "rt_ms", "external_id", "params", "type", "trial_id", "data", "confidence", "pilot",
         "client_time"])),
        inner, max_size=4)), max_leaves=12)


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN/Infinity included on purpose


def _assert_refused_or_valid(resp: Any, before: dict[str, Any], app: Any, allowed_ok: bool) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        err = resp.get_json()["error"]
        assert err["code"] and err["message"]
        assert "Traceback" not in resp.get_data(as_text=True)
        assert snapshot(app) == before
    else:
        assert allowed_ok, f"accepted an invalid request: {resp.status_code} {resp.get_data(as_text=True)}"


def _valid_start(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) - {"external_id", "params", "pilot"}:
        return False
    ext = body.get("external_id")
    params = body.get("params", {})
    return ((ext is None or (isinstance(ext, str) and len(ext) <= 200))
            and isinstance(params, dict) and all(isinstance(v, str) for v in params.values())
            and isinstance(body.get("pilot", False), (bool, int, str)))


def _valid_response(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) - {"choice", "rt_ms", "confidence", "client_time"}:
        return False
    choice, rt = body.get("choice"), body.get("rt_ms")
    client_time = body.get("client_time")
    return (choice in (0, 1) and not isinstance(choice, float) and isinstance(rt, (int, float))
            and not isinstance(rt, bool) and math.isfinite(rt) and 0 <= rt <= 24 * 3600 * 1000
            and (client_time is None or (isinstance(client_time, (int, float)) and not isinstance(client_time, bool)
                                         and math.isfinite(client_time) and 0 <= client_time <= 1e14)))


@SETTINGS
@given(body=st.one_of(json_values, st.fixed_dictionaries(
    {"external_id": st.one_of(json_scalars, sqlish), "params": st.one_of(json_values, st.dictionaries(sqlish, sqlish))})))
def test_start_with_any_json_never_fails_and_refusals_store_nothing(app, client, registered, body: Any) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    resp = client.post("/api/v1/experiments/tiny/participants", data=_dump(body), content_type="application/json")
    _assert_refused_or_valid(resp, before, app, allowed_ok=True)
    if resp.status_code < 400:
        # accepted ones are stored verbatim (strings are parameters, never SQL); of the
        # parameters, those the recruitment config records (the others are dropped)
        from study_server.db import get_session
        from study_server.models import Participant
        from study_server.services.cache import config_of
        from study_server.services.recruitment import recorded_params

        with app.app_context():
            p = get_session().scalars(select(Participant).where(
                Participant.public_id == resp.get_json()["participant_id"])).one()
            assert p.external_id == (body.get("external_id") or None)
            assert p.params == recorded_params(config_of(registered), body.get("params", {}))


@SETTINGS
@given(body=json_values)
def test_response_with_any_json_never_fails_and_refusals_store_nothing(app, client, registered, body: Any) -> None:  # type: ignore[no-untyped-def]
    token = start(client, external_id="resp-fuzz")["token"]
    data = current(client, token)
    if data.get("finished"):
        return
    before = snapshot(app)
    resp = client.post(f"/api/v1/trials/{data['trial']['id']}/response", data=_dump(body),
                       content_type="application/json", headers=auth(token))
    _assert_refused_or_valid(resp, before, app, allowed_ok=_valid_response(body))


@SETTINGS
@given(query=st.one_of(st.sampled_from(["next=1", "next=true", "next=0", "next=", "next=2", "next=%00", "next=1&next=0",
                                        "next[]=1", "next=%F0%9F%98%80", "next=' OR 1=1 --", "other=1", "next"]),
                       st.builds(lambda v: "next=" + v, odd_text)))
def test_response_with_any_next_parameter_never_fails(app, client, registered, query: str) -> None:  # type: ignore[no-untyped-def]
    """``?next=``: 1/true/yes and 0/false/no (or absent) are accepted; anything else is a 400
    that stores nothing; an accepted ``next=1`` reply carries the following trial."""
    from urllib.parse import parse_qs

    token = start(client, external_id="next-fuzz")["token"]
    data = current(client, token)
    if data.get("finished"):
        return
    before = snapshot(app)
    resp = client.post(f"/api/v1/trials/{data['trial']['id']}/response?{query}", json={"choice": 0, "rt_ms": 5},
                       headers=auth(token))
    values = parse_qs(query, keep_blank_values=True).get("next", [""])
    first = values[0].strip().lower()
    valid = first in ("1", "true", "yes", "0", "false", "no", "")
    _assert_refused_or_valid(resp, before, app, allowed_ok=valid)
    if resp.status_code == 200:
        assert ("next" in resp.get_json()) == (first in ("1", "true", "yes"))


@SETTINGS
@given(raw=st.binary(max_size=300), ctype=st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
     "application/json; charset=latin-1", "", "application/xml"]),
    endpoint=st.sampled_from(["start", "response", "event"]))
def test_raw_bytes_bodies_never_fail(app, client, two_participants, raw: bytes, ctype: str, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    url = {"start": "/api/v1/experiments/tiny/participants", "event": "/api/v1/events",
           "response": f"/api/v1/trials/{two_participants['a_trial']}/response"}[endpoint]
    resp = client.post(url, data=raw, content_type=ctype, headers=auth(two_participants["a"]))
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    ok = {"start": _valid_start, "response": _valid_response,
          "event": lambda b: isinstance(b, dict) and isinstance(b.get("type"), str)}[endpoint](body)
    _assert_refused_or_valid(resp, before, app, allowed_ok=ok and ctype.startswith("application/json"))


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=2 * 1024 * 1024),
       endpoint=st.sampled_from(["start", "response", "event"]))
def test_huge_bodies_are_413_and_store_nothing(app, client, two_participants, size: int, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    url = {"start": "/api/v1/experiments/tiny/participants", "event": "/api/v1/events",
           "response": f"/api/v1/trials/{two_participants['a_trial']}/response"}[endpoint]
    body = '{"choice": 0, "rt_ms": 5, "pad": "' + "x" * size + '"}'
    resp = client.post(url, data=body, content_type="application/json", headers=auth(two_participants["a"]))
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "request_entity_too_large"
    assert snapshot(app) == before


SEGMENTS = ["..", ".", "%2e%2e", "%2E%2E", "..%2f", "%2f", "%5c", "\\", "//", "images", "manifest.json", "etc",
            "passwd", "%00", "~", "a.png", "..;", "%252e%252e", "images/..", "0" * 70 + ".png", "..\\..\\x.png"]


@SETTINGS
@given(parts=st.lists(st.one_of(st.sampled_from(SEGMENTS), odd_text.filter(lambda t: t and "?" not in t and "#" not in t)),
                      min_size=1, max_size=6),
       exp=st.one_of(st.just(None), st.integers(min_value=-5, max_value=2**80)))
def test_image_urls_never_escape_the_images_folder(app, client, two_participants, tiny_set, parts: list[str],
                                                   exp: Any) -> None:  # type: ignore[no-untyped-def]
    manifest = (tiny_set / "manifest.json").read_bytes()
    before = snapshot(app)
    exp_id = two_participants["exp_id"] if exp is None else exp
    resp = client.get(f"/media/{exp_id}/" + "/".join(parts))
    assert resp.status_code < 500, resp.get_data(as_text=True)
    body = resp.get_data()
    assert manifest[:200] not in body and b'"correct"' not in body
    if resp.status_code == 200:
        assert body.startswith(b"\x89PNG"), "only stimulus images are ever served"
    assert snapshot(app) == before


@SETTINGS
@given(value=sqlish, where=st.sampled_from(["external_id", "param", "event_type", "event_data", "slug", "token"]))
def test_sql_looking_strings_are_data(app, client, two_participants, value: str, where: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    token = two_participants["a"]
    if where == "external_id":
        resp = client.post("/api/v1/experiments/tiny/participants", json={"external_id": value, "params": {}})
    elif where == "param":
        resp = client.post("/api/v1/experiments/tiny/participants", json={"external_id": None, "params": {value: value}})
    elif where == "event_type":
        resp = client.post("/api/v1/events", json={"type": value}, headers=auth(token))
    elif where == "event_data":
        resp = client.post("/api/v1/events", json={"type": "x", "data": {value: value}}, headers=auth(token))
    elif where == "slug":
        resp = client.post(f"/api/v1/experiments/{value}/participants", json={"external_id": None, "params": {}})
    else:
        resp = client.get("/api/v1/trial", headers={"Authorization": "Bearer " + value.encode("utf-8", "surrogatepass")
                                                    .decode("latin-1")})
    assert resp.status_code < 500, resp.get_data(as_text=True)
    after = snapshot(app)
    if resp.status_code >= 400:
        assert after == before
    else:  # stored as one more row, nothing else touched
        grew = {k for k in after["counts"] if after["counts"][k] != before["counts"][k]}
        assert grew <= {"participant", "trial", "event", "experiment"}
        assert after["counts"]["response"] == before["counts"]["response"]
        if where == "external_id" and value:
            from study_server.db import get_session
            from study_server.models import Participant

            with app.app_context():
                stored = get_session().scalars(select(Participant.external_id).where(
                    Participant.public_id == resp.get_json()["participant_id"])).one()
                assert stored == value


def _trial_ids(app: Any, token: str) -> list[int]:
    from study_server.db import get_session
    from study_server.models import Participant, Trial
    from study_server.services.participants import hash_token

    with app.app_context():
        s = get_session()
        pid = s.scalars(select(Participant.id).where(Participant.token_hash == hash_token(token))).one()
        return list(s.scalars(select(Trial.id).where(Trial.participant_id == pid).order_by(Trial.position)))


@SETTINGS
@given(actions=st.lists(st.tuples(st.integers(min_value=-3, max_value=3), st.sampled_from([0, 1])), max_size=12),
       foreign=st.booleans())
def test_replayed_and_out_of_order_responses(app, client, two_participants, actions: list[tuple[int, int]],
                                             foreign: bool) -> None:  # type: ignore[no-untyped-def]
    """Model: past trials replay the first answer, the current one stores, later ones are 409."""
    from study_server.db import get_session
    from study_server.models import Response

    token = start(client)["token"]
    ids = _trial_ids(app, token)
    stored: dict[int, int] = {}  # position index -> choice
    pos = 0
    for offset, choice in actions:
        target = pos + offset
        if target < 0 or target >= len(ids):
            tid, expected = 2**31 - 1, 404  # no such trial
        else:
            tid = ids[target]
            expected = 200 if target <= pos else 409
        if foreign:  # another participant's trial is never theirs to answer
            tid, expected = two_participants["b_trial"], 404
        before = snapshot(app)
        resp = client.post(f"/api/v1/trials/{tid}/response", json={"choice": choice, "rt_ms": 100}, headers=auth(token))
        assert resp.status_code == expected, (offset, pos, resp.get_data(as_text=True))
        if expected == 200:
            assert resp.get_json()["duplicate"] is (target < pos)
            if target == pos:
                stored[pos] = choice
                pos += 1
            else:
                assert snapshot(app) == before
        else:
            assert snapshot(app) == before
    with app.app_context():
        rows = {r.trial_id: r.chosen_side for r in get_session().scalars(select(Response).where(Response.trial_id.in_(ids)))}
    assert rows == {ids[p]: c for p, c in stored.items()}


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)


@SETTINGS
@given(header=st.one_of(header_text, st.builds(lambda t: "Bearer " + t, header_text),
                        st.builds(lambda t: "bearer " + t, header_text), st.builds(lambda t: "Basic " + t, header_text)),
       endpoint=st.sampled_from(["trial", "response", "event"]))
def test_forged_tokens_are_401_and_store_nothing(app, client, two_participants, header: str, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(app)
    h = {"Authorization": header}
    if endpoint == "trial":
        resp = client.get("/api/v1/trial", headers=h)
    elif endpoint == "response":
        resp = client.post(f"/api/v1/trials/{two_participants['a_trial']}/response", json={"choice": 0, "rt_ms": 5},
                           headers=h)
    else:
        resp = client.post("/api/v1/events", json={"type": "blur"}, headers=h)
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] in ("missing_token", "bad_token")
    assert snapshot(app) == before


def test_expired_tokens_are_401_and_store_nothing(app, client, registered) -> None:  # type: ignore[no-untyped-def]
    """A token replaced by a resume, and the token of a timed-out participant, no longer work."""
    from study_server.db import get_session
    from study_server.models import Participant
    from study_server.services.participants import hash_token

    first = start(client, external_id="EXP1")
    trial = current(client, first["token"])["trial"]
    again = start(client, external_id="EXP1")  # resuming issues a new token
    assert again["resumed"] and again["token"] != first["token"]
    timed_out = start(client, external_id="EXP2")
    t2 = current(client, timed_out["token"])["trial"]
    with app.app_context():
        s = get_session()
        s.scalars(select(Participant).where(Participant.token_hash == hash_token(timed_out["token"]))).one().status = "timed_out"
        s.commit()
    before = snapshot(app)
    for token, tid in ((first["token"], trial["id"]), (timed_out["token"], t2["id"])):
        assert client.get("/api/v1/trial", headers=auth(token)).status_code == 401
        resp = client.post(f"/api/v1/trials/{tid}/response", json={"choice": 0, "rt_ms": 5}, headers=auth(token))
        assert resp.status_code == 401 and resp.get_json()["error"]["code"] in ("bad_token", "participation_ended")
        assert client.post("/api/v1/events", json={"type": "x"}, headers=auth(token)).status_code == 401
    assert snapshot(app) == before
    assert client.get("/api/v1/trial", headers=auth(again["token"])).status_code == 200


def test_huge_ids_in_urls_are_404(app, client, two_participants) -> None:  # type: ignore[no-untyped-def]
    """Ids beyond the database's integer range match no route (they used to overflow the driver: 500)."""
    before = snapshot(app)
    for url in ("/api/v1/trials/99999999999999999999999/response", f"/api/v1/trials/{2**31}/response"):
        resp = client.post(url, json={"choice": 0, "rt_ms": 5}, headers=auth(two_participants["a"]))
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get("/media/99999999999999999999999/images/a.png").status_code == 404
    assert snapshot(app) == before


def test_nul_nan_and_deep_json_are_400(app, client, two_participants) -> None:  # type: ignore[no-untyped-def]
    """Inputs PostgreSQL cannot store, or Python cannot parse, are refused before any view (used to be 500)."""
    before = snapshot(app)
    h = auth(two_participants["a"])
    cases = [("/api/v1/experiments/tiny/participants", '{"external_id": "a\\u0000b", "params": {}}'),
             ("/api/v1/events", '{"type": "blur\\u0000"}'),
             ("/api/v1/events", '{"type": "x", "data": {"a": NaN}}'),
             ("/api/v1/events", '{"type": "x", "data": {"a": 1e400}}'),
             ("/api/v1/events", '{"type": "x", "data": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}")]
    for url, body in cases:
        resp = client.post(url, data=body, content_type="application/json", headers=h)
        assert resp.status_code == 400, (body[:60], resp.get_data(as_text=True))
        assert resp.get_json()["error"]["code"] == "invalid_input"
    assert client.post("/api/v1/experiments/%00/participants", json={"params": {}}).status_code == 400
    assert client.get("/study/%00").status_code == 400
    assert snapshot(app) == before
