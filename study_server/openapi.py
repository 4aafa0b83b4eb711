"""OpenAPI 3.1 description of the participant API, served at ``GET /api/v1/openapi.json``.

Request bodies come from the pydantic models in ``api.py`` (``model_json_schema()``), so a
field added there is described here without an edit. On top of them the document states the
input guards of ``http.py`` that hold for every request: no string anywhere may contain a NUL
character (``pattern``), and event ``data`` is any JSON of such strings. Answers are written by
hand to match what the views return; every object is closed (``additionalProperties: false``)
so that a new field, or a field that should never reach the client (which option is correct),
fails ``tests/robustness/test_openapi.py`` until it is described.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from .http import MAX_URL_INT

__all__ = ["build_openapi", "bp", "OPENAPI_PATH"]

OPENAPI_PATH = "/api/v1/openapi.json"
#: every string of a request: http.py refuses NUL characters anywhere (PostgreSQL cannot store them)
NO_NUL = "^[^\\u0000]*$"

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("interp-study")
    except Exception:  # noqa: BLE001 - not installed (a source checkout): the description still serves
        return "0"


def _guard_strings(schema: Any) -> Any:
    """``schema`` with the NUL guard on every string, property name and free-form object."""
    if isinstance(schema, list):
        return [_guard_strings(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _guard_strings(v) for k, v in schema.items()}
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out.setdefault("pattern", NO_NUL)
    if out.get("type") == "object":
        out.setdefault("propertyNames", {"pattern": NO_NUL})
        if out.get("additionalProperties") is True:  # free-form JSON (event data)
            out["additionalProperties"] = {"$ref": "#/components/schemas/JsonValue"}
    return out


def _model(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """The request schema of ``model``; nested models go to ``components``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = _guard_strings(sub)
    return _guard_strings(schema)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": required if required is not None else list(properties),
            "additionalProperties": False, **extra}


NULLABLE_STRING = {"type": ["string", "null"]}

ERRORS: dict[str, tuple[str, str]] = {
    # status: (component name, description)
    "400": ("BadRequest", "The request is malformed: not a JSON object (`bad_json`), a field out of its schema "
            "(`invalid_field`), a string with a NUL character, JSON with NaN/Infinity or nested deeper than 64 "
            "levels (`invalid_input`), an MTurk HIT preview (`mturk_preview`). Nothing is stored."),
    "401": ("Unauthorized", "No token (`missing_token`), an unknown or replaced token (`bad_token`), or a "
            "participation that has ended (`participation_ended`). Nothing is stored, except that a participation "
            "found idle past the session timeout is marked timed out."),
    "403": ("Forbidden", "Pilot participants can only be started by a logged-in researcher (`pilot_forbidden`)."),
    "404": ("NotFound", "No such experiment (`unknown_experiment`), no such trial for this participant "
            "(`unknown_trial`), or a URL that matches no route (`not_found`). Nothing is stored."),
    "409": ("Conflict", "The state does not allow it: not the current trial (`not_current`), a full, paused or "
            "closed study (`study_full`, `study_<status>`), an id that already took part "
            "(`already_participated`, `participation_ended`). Nothing is stored."),
    "413": ("PayloadTooLarge", "The body is larger than 64 KiB (`request_entity_too_large`). Nothing is stored."),
    "429": ("TooManyRequests", "Rate limit (starts; see docs/security.md) exceeded (`too_many_requests`)."),
    "503": ("ServiceUnavailable", "The database is briefly unavailable (`database_unavailable`); retry."),
}


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: {"$ref": f"#/components/responses/{ERRORS[s][0]}"} for s in statuses}


def _schemas() -> dict[str, Any]:
    url = {"type": "string", "format": "uri-reference"}
    trial = _obj({
        "id": {"type": "integer", "minimum": 1},
        "position": {"type": "integer", "minimum": 0, "description": "0-based position in the schedule"},
        "total": {"type": "integer", "minimum": 1, "description": "trials in the schedule"},
        "kind": {"enum": ["practice", "main"], "description": "catch trials are served as `main`"},
        "block": {"type": "integer", "minimum": 0},
        "prompt": {"type": "string"},
        "context": {"type": "array", "items": _obj({"label": {"type": "string"},
                                                     "images": {"type": "array", "items": url}})},
        "options": {"type": "array", "minItems": 2, "maxItems": 2,
                    "description": "in screen order: `choice` 0 is the first (left), 1 the second (right)",
                    "items": {"oneOf": [_obj({"image": url}), _obj({"text": {"type": "string"}})]}},
    }, description="A trial as the client sees it: nothing says which option is correct.")
    current = _obj({
        "trial": _ref("Trial"),
        "preload": {"type": "array", "items": url, "description": "images of the following trial, to fetch ahead"},
        "answered": {"type": "integer", "minimum": 0, "description": "trials with a response"},
    })
    finished = _obj({
        "trial": {"type": "null"},
        "finished": {"const": True},
        "completion_url": {**NULLABLE_STRING, "description": "where to send the participant (null: none)"},
        "completion_code": NULLABLE_STRING,
        "completion_form": {"oneOf": [{"type": "null"}, _obj({
            "action": {"type": "string", "format": "uri"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}}})],
            "description": "MTurk: POST `fields` to `action`"},
    })
    return {
        "Error": _obj({"error": _obj({"code": {"type": "string", "minLength": 1},
                                      "message": {"type": "string", "minLength": 1}})}),
        "Started": _obj({
            "participant_id": {"type": "string", "minLength": 1},
            "token": {"type": "string", "minLength": 1, "description": "send as `Authorization: Bearer <token>`"},
            "resumed": {"type": "boolean", "description": "the same `external_id` again: the same participant, "
                        "with a new token (the old one stops working)"},
            "restarted": {"const": True, "description": "`reload_policy: restart` started a new attempt"},
        }, required=["participant_id", "token", "resumed"]),
        "Trial": trial,
        "CurrentTrial": current,
        "Finished": finished,
        "TrialReply": {"oneOf": [_ref("CurrentTrial"), _ref("Finished")]},
        "Stored": _obj({
            "stored": {"const": True},
            "duplicate": {"type": "boolean", "description": "a replay: the first answer stands, nothing was written"},
            "feedback": _obj({"correct": {"type": "boolean"}}, description="practice trials with feedback only"),
            "next": {**_ref("TrialReply"), "description": "with `?next=1`: what `GET /trial` answers now"},
        }, required=["stored", "duplicate"]),
        "JsonValue": {"description": "any JSON value whose strings and keys contain no NUL character",
                      "oneOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number"},
                                {"type": "string", "pattern": NO_NUL},
                                {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
                                {"type": "object", "propertyNames": {"pattern": NO_NUL},
                                 "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}}]},
    }


@lru_cache(maxsize=1)
def _build() -> dict[str, Any]:
    from .api import EventBody, ResponseBody, StartBody

    schemas = _schemas()
    schemas["StartBody"] = _model(StartBody, schemas)
    schemas["ResponseBody"] = _model(ResponseBody, schemas)
    schemas["EventBody"] = _model(EventBody, schemas)
    bearer = [{"bearerAuth": []}]

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}

    paths = {
        "/api/v1/experiments/{slug}/participants": {"post": {
            "operationId": "startParticipant",
            "summary": "Start (or resume) a participant",
            "description": "`params` are the recruitment parameters (e.g. `PROLIFIC_PID`); those the "
                           "experiment does not record are dropped. The same `external_id` (or platform id) "
                           "again resumes the same participant (200). `pilot: true` needs a researcher's "
                           "admin session. Rate limited per client address.",
            "security": [],
            "parameters": [{"name": "slug", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}}],
            "requestBody": body("StartBody"),
            "responses": {"201": _json(_ref("Started"), "A new participant"),
                          "200": _json(_ref("Started"), "The same participant, resumed"),
                          **_errors("400", "403", "404", "409", "413", "429", "503")},
        }},
        "/api/v1/trial": {"get": {
            "operationId": "getTrial",
            "summary": "The current trial, or the finished reply",
            "description": "Records that the trial was shown. Idempotent until it is answered.",
            "security": bearer,
            "responses": {"200": _json(_ref("TrialReply"), "The current trial, or `finished`"),
                          **_errors("400", "401", "503")},
        }},
        "/api/v1/trials/{trial_id}/response": {"post": {
            "operationId": "postResponse",
            "summary": "Answer a trial",
            "description": "`choice` is the screen position (0 = left, 1 = right). The same trial again "
                           "returns the first result (`duplicate: true`) and writes nothing.",
            "security": bearer,
            "parameters": [
                {"name": "trial_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_URL_INT}},
                {"name": "next", "in": "query", "required": False,
                 "description": "1/true/yes: the reply carries `next`, what `GET /trial` would answer now "
                                "(one round trip per trial); 0/false/no or absent: it does not.",
                 "schema": {"enum": ["1", "true", "yes", "0", "false", "no"]}},
            ],
            "requestBody": body("ResponseBody"),
            "responses": {"200": _json(_ref("Stored"), "Stored, or a replay of the first answer"),
                          **_errors("400", "401", "404", "409", "413", "503")},
        }},
        "/api/v1/events": {"post": {
            "operationId": "postEvent",
            "summary": "Record a client event (focus, blur, ...)",
            "description": "`data` is free-form JSON (at most 8000 characters as text).",
            "security": bearer,
            "requestBody": body("EventBody"),
            "responses": {"204": {"description": "Stored"}, **_errors("400", "401", "404", "413", "503")},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "interp-study participant API", "version": _version(),
                 "description": "The JSON API the participant page and the bots use. Errors are "
                                "`{\"error\": {\"code\", \"message\"}}` with a 4xx status (503 while the "
                                "database is unavailable); a malformed request never gets a 5xx and "
                                "never changes anything stored. A body that is not JSON is a 400 "
                                "(`bad_json`), never a 415."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {name: _json(_ref("Error"), description) for name, description in ERRORS.values()},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "the `token` of `POST /api/v1/experiments/{slug}/participants`"}},
        },
    }


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the participant API (a fresh copy: callers may change it)."""
    return copy.deepcopy(_build())


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(_build())
