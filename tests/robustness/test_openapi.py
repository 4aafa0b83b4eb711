"""The participant API's OpenAPI description, and schemathesis against a real server.

(a) ``GET /api/v1/openapi.json`` is valid OpenAPI 3.1 (schemathesis validates it against the
OpenAPI meta-schema; every schema in it against JSON Schema 2020-12) and describes exactly the
routes of the ``api`` blueprint, so a new route without a description fails here.

(b) Property-based tests (schemathesis over Hypothesis, positive and negative data) and
schemathesis' deterministic coverage cases (boundaries, wrong types and content types, a missing
header, methods the API does not have) against a real ``interp-study serve`` process over HTTP,
with the token of a started participant, another participant's token, no token, or a forged one
(schemathesis generates those): no 5xx ever, every status code, content type and body is the
documented one, schema-valid requests are accepted and invalid ones refused, and a refused
request (4xx) changes nothing stored (``snapshot`` digests every participant, trial, response and
event row). One leniency is allowed, narrowly: see ``_lax_coercion_of_valid``. Examples are
bounded and derandomized; runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoverageScenario
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import select

from study_server.openapi import OPENAPI_PATH, build_openapi

from .conftest import auth, snapshot

#: examples per (operation, positive/negative): 4 x 2 x 50 = 400 requests per database, plus about
#: 220 deterministic coverage cases; the whole file takes about 15 s per database
EXAMPLES = 50
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, positive_data_acceptance, ignored_auth]
START = "POST /api/v1/experiments/{slug}/participants"
TRIAL = "GET /api/v1/trial"
RESPONSE = "POST /api/v1/trials/{trial_id}/response"
EVENT = "POST /api/v1/events"


def _flask_path(rule: str) -> str:
    """``/trials/<int:trial_id>/response`` -> ``/trials/{trial_id}/response``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _subschemas(node: Any) -> Any:
    """Every JSON Schema in the document (components, parameters, bodies, answers)."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield node["schema"]
        for key, value in node.items():
            if key == "schemas" and isinstance(value, dict):
                yield from value.values()
            yield from _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _subschemas(value)


@pytest.fixture
def doc_app(sqlite_url: str):  # type: ignore[no-untyped-def]
    """An app on SQLite only: the document does not depend on the database."""
    from study_server import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test-secret",
                      "REQUEST_LOG": False, "RATELIMIT_ENABLED": False})
    yield app
    app.extensions["db_engine"].dispose()


def test_served_document_is_valid_openapi_31(doc_app) -> None:  # type: ignore[no-untyped-def]
    resp = doc_app.test_client().get(OPENAPI_PATH)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"  # the headers middleware leaves JSON alone
    assert "attachment" not in resp.headers.get("Content-Disposition", "")
    doc = resp.get_json()
    assert doc == build_openapi() and doc["openapi"].startswith("3.1")
    loaded = schemathesis.openapi.from_wsgi(OPENAPI_PATH, doc_app)
    loaded.validate()  # the OpenAPI 3.1 meta-schema; raises on an invalid document
    for sub in _subschemas(doc):
        assert jsonschema_rs.meta.is_valid(sub), sub
    labels = {op.ok().label for op in loaded.get_all_operations()}
    assert labels == {START, TRIAL, RESPONSE, EVENT}
    with pytest.raises(jsonschema_rs.ValidationError):  # the validator does reject a broken document
        schemathesis.openapi.from_dict({**doc, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}).validate()


def test_document_lists_exactly_the_api_routes(doc_app) -> None:  # type: ignore[no-untyped-def]
    """A route added to the ``api`` blueprint without a description fails here (and the reverse)."""
    routes = {(m.lower(), _flask_path(rule.rule)) for rule in doc_app.url_map.iter_rules()
              if rule.endpoint.startswith("api.") for m in rule.methods - {"HEAD", "OPTIONS"}}
    doc = build_openapi()
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert described == routes
    for (method, path) in described:  # every path parameter is declared, and only those
        declared = {p["name"] for p in doc["paths"][path][method].get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path))


def test_request_bodies_are_the_pydantic_models() -> None:
    from study_server.api import EventBody, ResponseBody, StartBody

    schemas = build_openapi()["components"]["schemas"]
    for model in (StartBody, ResponseBody, EventBody):
        generated = model.model_json_schema()
        described = schemas[model.__name__]
        assert set(described["properties"]) == set(model.model_fields)
        assert described.get("required", []) == generated.get("required", [])
        assert described["additionalProperties"] is False


# --------------------------------------------------------------------------- against a live server


def _trial_ids(app: Any, token: str) -> list[int]:
    from study_server.db import get_session
    from study_server.models import Participant, Trial
    from study_server.services.participants import hash_token

    with app.app_context():
        s = get_session()
        pid = s.scalars(select(Participant.id).where(Participant.token_hash == hash_token(token))).one()
        ids = list(s.scalars(select(Trial.id).where(Trial.participant_id == pid).order_by(Trial.position)))
        s.rollback()
    return ids


@pytest.fixture
def live_api(app, tiny_set: Path, tmp_path: Path, live_server) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The tiny experiment (one practice trial with feedback, 4 main trials) on a live server,
    two started participants, and the schema as the server serves it."""
    from stimuli_builder.tiny import write_tiny_experiment
    from study_server.db import get_session
    from study_server.services.experiments import register_experiment

    path = write_tiny_experiment(tmp_path / "openapi-exp", tiny_set, trials=4, practice=1)
    with app.app_context():
        register_experiment(get_session(), path)
    http = requests.Session()
    tokens = {}
    for name in ("a", "b"):
        r = http.post(f"{live_server.url}/api/v1/experiments/tiny/participants", json={"external_id": f"oa-{name}"})
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
        assert http.get(f"{live_server.url}/api/v1/trial", headers=auth(tokens[name])).status_code == 200
    schema = schemathesis.openapi.from_url(live_server.url + OPENAPI_PATH)
    return {"url": live_server.url, "schema": schema, "http": http, "tokens": tokens,
            "trials": {name: _trial_ids(app, token) for name, token in tokens.items()}}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _lax_coercion_of_valid(case: Any) -> bool:
    """Whether a body outside the documented schema was accepted because the server's own
    validation (pydantic, lax mode: ``0``/``"yes"`` for booleans, numeric strings and booleans for
    numbers) turns it into a documented, valid body, with nothing else of the request negated.

    The description states what clients must send; this leniency is the server's, and narrow: a
    NUL character, an unknown field or an out-of-range number is never accepted this way.
    """
    from study_server import api

    if case.meta is None or not case.meta.is_negative_at(ParameterLocation.BODY) or any(
            case.meta.is_negative_at(loc) for loc in (ParameterLocation.PATH, ParameterLocation.QUERY)):
        return False
    name = {START: "StartBody", RESPONSE: "ResponseBody", EVENT: "EventBody"}.get(case.operation.label)
    if name is None or not isinstance(case.body, dict):
        return False
    try:
        coerced = getattr(api, name).model_validate(case.body).model_dump(mode="json", exclude_unset=True)
    except ValueError:
        return False
    raw = case.operation.schema.raw_schema
    validator = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                                     "components": raw["components"]})
    return validator.is_valid(coerced) and not validator.is_valid(case.body)


def _validate(case: Any, response: Any, live: dict[str, Any], extra: tuple[Any, ...] = ()) -> None:
    """Schemathesis' checks: status code, content type, headers and body against the description;
    negative data refused, positive data accepted; a 2xx with a token is a 401 without one or with
    a forged one (``ignored_auth`` sends both)."""
    try:
        case.validate_response(response, checks=CHECKS + list(extra),
                               transport_kwargs={"base_url": live["url"], "session": live["http"]})
    except FailureGroup as group:
        if any(not (isinstance(f, AcceptedNegativeData) and _lax_coercion_of_valid(case)) for f in group.exceptions):
            raise


def _cases(operation: Any, mode: GenerationMode, tokens: dict[str, str],
           pins: list[dict[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    """``(credential, case)``: participant a's token (most often), b's, none, or schemathesis' own
    (forged, malformed or missing); path parameters generated or pinned to real ones (``pins``).

    Tokens and pins are fixed parameters of the strategy, not edits of a generated case, so a
    negative case stays negative in what was generated (the body, the query, the rest of the path).
    """
    secured = operation.label != START
    branches: list[tuple[str, st.SearchStrategy[Any]]] = []
    for pin in pins:
        fixed = pin or None
        if secured:
            for who in ("a", "a", "b"):
                branches.append((who, operation.as_strategy(generation_mode=mode, headers=auth(tokens[who]),
                                                            path_parameters=fixed)))
        branches.append(("generated", operation.as_strategy(generation_mode=mode, path_parameters=fixed)))
    if secured:
        branches.append(("none", operation.as_strategy(generation_mode=mode)))
    return st.sampled_from(range(len(branches))).flatmap(
        lambda i: st.tuples(st.just(branches[i][0]), branches[i][1]))


def _run(app: Any, live: dict[str, Any], label: str, mode: GenerationMode, pins: list[dict[str, Any]],
         seen: dict[str, set[int]], counts: Counter) -> None:
    """Generate cases of ``label`` in ``mode``, send them to the live server, check every answer."""
    operation = live["schema"].find_operation_by_label(label)
    ids_a = live["trials"]["a"]

    @SETTINGS
    @given(drawn=_cases(operation, mode, live["tokens"], pins), data=st.data())
    def run(drawn: tuple[str, Any], data: Any) -> None:
        who, case = drawn
        if who == "none":
            for name in [n for n in (case.headers or {}) if n.lower() == "authorization"]:
                del case.headers[name]
        if label == EVENT and mode == GenerationMode.POSITIVE and isinstance(case.body, dict) \
                and case.body.get("trial_id") is not None and data.draw(st.booleans(), label="real trial_id"):
            case.body["trial_id"] = data.draw(st.sampled_from(ids_a), label="trial_id")
        before = snapshot(app)
        response = case.call(base_url=live["url"], session=live["http"], timeout=30)
        status = response.status_code
        seen.setdefault(f"{label} {mode.value}", set()).add(status)
        counts[(label, mode.value, who, status)] += 1
        assert status < 500, response.text
        if status >= 400:  # refused: nothing stored
            assert snapshot(app) == before, f"{status} {response.text} changed stored data"
        assert response.headers.get("cache-control") == ["no-store"]  # names lower-cased, values listed
        if label == RESPONSE and status == 200:  # ?next=1 carries the next trial, and only then
            assert ("next" in response.json()) == _truthy((case.query or {}).get("next", "0"))
        _validate(case, response, live)

    run()


def test_live_server_conforms_to_its_openapi_description(app, live_api) -> None:  # type: ignore[no-untyped-def]
    live = live_api
    ids = live["trials"]["a"] + live["trials"]["b"]
    seen: dict[str, set[int]] = {}
    counts: Counter = Counter()
    pins = {START: [{}, {"slug": "tiny"}], TRIAL: [{}], EVENT: [{}],
            RESPONSE: [{}] + [{"trial_id": i} for i in ids]}
    for label in (START, TRIAL, EVENT, RESPONSE):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(app, live, label, mode, pins[label], seen, counts)
    # the runs reached the interesting answers, not only refusals
    assert 201 in seen[f"{START} positive"] and 400 in seen[f"{START} negative"]
    assert {200, 401}.issubset(seen[f"{TRIAL} positive"])
    assert {200, 401, 404}.issubset(seen[f"{RESPONSE} positive"]) and 400 in seen[f"{RESPONSE} negative"]
    assert {204, 401}.issubset(seen[f"{EVENT} positive"]) and 400 in seen[f"{EVENT} negative"]
    assert sum(counts.values()) >= 6 * EXAMPLES  # Hypothesis may stop early only where it ran out of inputs
    _walk_through(live)


def _walk_through(live: dict[str, Any]) -> None:
    """Every documented answer shape at least once, whatever the fuzzing drew: a participant
    answers all trials with ``?next=1`` (practice feedback, the next trial, then the finished
    reply), replays the last answer, and reads the finished reply from ``GET /trial``."""
    schema, url, http = live["schema"], live["url"], live["http"]
    ops = {label: schema.find_operation_by_label(label) for label in (START, TRIAL, RESPONSE)}
    started = http.post(f"{url}/api/v1/experiments/tiny/participants", json={"external_id": "oa-walk"})
    ops[START].validate_response(started)
    token = started.json()["token"]
    reply = http.get(f"{url}/api/v1/trial", headers=auth(token))
    ops[TRIAL].validate_response(reply)
    current, last, shapes = reply.json(), None, set()
    while current.get("trial"):
        last = current["trial"]["id"]
        stored = http.post(f"{url}/api/v1/trials/{last}/response?next=1", json={"choice": 0, "rt_ms": 500},
                           headers=auth(token))
        ops[RESPONSE].validate_response(stored)
        shapes |= set(stored.json())
        current = stored.json()["next"]
    assert current["finished"] is True and {"stored", "duplicate", "feedback", "next"} <= shapes
    replay = http.post(f"{url}/api/v1/trials/{last}/response", json={"choice": 1, "rt_ms": 5}, headers=auth(token))
    ops[RESPONSE].validate_response(replay)
    assert replay.json()["duplicate"] is True and "next" not in replay.json()
    finished = http.get(f"{url}/api/v1/trial", headers=auth(token))
    ops[TRIAL].validate_response(finished)
    assert finished.json() == current


def _first_unanswered(app: Any, trial_ids: list[int]) -> int:
    """The participant's current trial (the last one once all are answered: a replay)."""
    from study_server.db import get_session
    from study_server.models import Response

    with app.app_context():
        s = get_session()
        answered = set(s.scalars(select(Response.trial_id).where(Response.trial_id.in_(trial_ids))))
        s.rollback()
    return next((t for t in trial_ids if t not in answered), trial_ids[-1])


def test_live_server_coverage_cases(app, live_api) -> None:  # type: ignore[no-untyped-def]
    """Schemathesis' deterministic edge cases (boundaries, wrong types, missing and unexpected
    fields, wrong content types, a missing Authorization header, methods the API does not have)
    with participant a's token and, where the path is not what is being varied, real ids."""
    live = live_api
    schema = live["schema"]
    token_a, ids_a = live["tokens"]["a"], live["trials"]["a"]
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    counts: Counter = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        config = schema.config.generation_for(operation=operation)
        for case in schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config):
            scenario = case.meta.phase.data.scenario
            if case.headers and "Authorization" in case.headers:  # the placeholder: a real token
                case.headers["Authorization"] = f"Bearer {token_a}"
            if not case.meta.is_negative_at(ParameterLocation.PATH):
                if "slug" in (case.path_parameters or {}):
                    case.path_parameters["slug"] = "tiny"
                if "trial_id" in (case.path_parameters or {}):
                    case.path_parameters["trial_id"] = _first_unanswered(app, ids_a)
            before = snapshot(app)
            response = case.call(base_url=live["url"], session=live["http"], timeout=30)
            status = response.status_code
            counts[(operation.label, str(scenario), status)] += 1
            assert status < 500, response.text
            if status >= 400:
                assert snapshot(app) == before, f"{scenario}: {status} {response.text} changed stored data"
            assert response.headers.get("cache-control") == ["no-store"]
            if scenario == CoverageScenario.UNSPECIFIED_HTTP_METHOD and case.method != "OPTIONS":
                assert status == 405, (case.method, status)
            _validate(case, response, live, (missing_required_header, unsupported_method))
    assert sum(counts.values()) > 150  # every operation's boundaries, types, content types and methods
