"""The OpenAPI entries of cases (``node/api/cases.py``), merged into the document by
``node/api/openapi.py``. No imports from the API, as for ``openapi_interop``."""

from __future__ import annotations

from typing import Any

_BAD = {"$ref": "#/components/responses/BadRequest"}
_AUTH = {"401": {"$ref": "#/components/responses/Unauthorized"},
         "403": {"$ref": "#/components/responses/Forbidden"}}
_TOO_LARGE = {"$ref": "#/components/responses/TooLarge"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


_CASE_ID = {"name": "case_id", "in": "path", "required": True,
            "description": "the case's internal id, from /v1/cases/pending (not its reference)",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"}}

_CREDENTIALS = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["reference", "pin"], "additionalProperties": False,
        "properties": {
            "reference": {"type": "string", "maxLength": 64,
                          "description": "as issued, e.g. 7KQ2-M9XD-4HTR-B3ZP; case, spaces "
                                         "and hyphens do not matter"},
            "pin": {"type": "string", "maxLength": 64, "description": "the 8 digits"},
            "lang": {"type": "string", "enum": ["en", "fr"], "default": "en",
                     "description": "language of the plain-words status"}}}}}}

_PERSON_ERRORS = {
    "400": _BAD,
    "403": _error("CASE_ACCESS_DENIED: the reference and PIN do not open a case (the same "
                  "answer for a wrong reference and a wrong PIN)"),
    "413": _TOO_LARGE,
    "429": {**_error("CASE_LOCKED: too many wrong tries for this reference, or from this "
                     "address ([cases] in node.toml); header Retry-After gives the seconds"),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}

CASE_PATHS: dict[str, Any] = {
    "/v1/cases": {"post": {
        "summary": "Open a case for one person: its reference and PIN, shown only in this "
                   "answer",
        "description": "The items are signed as an add would sign them (all in one "
                       "transaction with the case), unless review is true: then nothing is "
                       "signed or shared until POST /v1/cases/{case_id}/approve. The node "
                       "keeps an HMAC of the reference and an argon2id hash of the PIN, "
                       "never either in clear. At most [cases] max_items items.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "minItems": 1, "items": _ref("Item")},
                           "dist": _ref("Distribution"),
                           "review": {"type": "boolean", "default": False}}}}}},
        "responses": {
            "201": _json("The case; store the reference and PIN with the person, not here",
                         _ref("OpenedCase")),
            "400": _BAD, **_AUTH, "413": _TOO_LARGE,
            "409": {"$ref": "#/components/responses/Conflict"},
            "503": {"$ref": "#/components/responses/StorageUnavailable"}},
    }},
    "/v1/cases/status": {"post": {
        "summary": "A case's status, with its reference and PIN (no token)",
        "security": [],
        "requestBody": _CREDENTIALS,
        "responses": {"200": _json("Where the case stands", _ref("CaseStatus")),
                      **_PERSON_ERRORS},
    }},
    "/v1/cases/withdraw": {"post": {
        "summary": "Withdraw a case, with its reference and PIN (no token): signs a revoke "
                   "(reason withdrawn) of all its records; again, it changes nothing",
        "security": [],
        "requestBody": _CREDENTIALS,
        "responses": {"200": _json("The case's status after the withdrawal",
                                   _ref("CaseStatus")),
                      **_PERSON_ERRORS,
                      "503": {"$ref": "#/components/responses/StorageUnavailable"}},
    }},
    "/v1/cases/pending": {"get": {
        "summary": "The review queue: cases opened with review, waiting for approval",
        "responses": {"200": _json("Oldest first", {
            "type": "object", "properties": {"cases": {"type": "array",
                                                       "items": _ref("CaseSummary")}}}),
            **_AUTH},
    }},
    "/v1/cases/{case_id}/approve": {"post": {
        "summary": "Sign and share a case waiting for review",
        "parameters": [_CASE_ID],
        "responses": {"200": _json("The case, now open", _ref("CaseSummary")),
                      "400": _BAD, **_AUTH,
                      "404": _error("CASE_NOT_FOUND: no case with this id"),
                      "409": _error("CASE_STATE: the case is not waiting for review (or the "
                                    "store refuses the write)"),
                      "503": {"$ref": "#/components/responses/StorageUnavailable"}},
    }},
    "/v1/cases/{case_id}/reject": {"post": {
        "summary": "Discard a case waiting for review: its hashes and row are deleted, "
                   "nothing was signed",
        "parameters": [_CASE_ID],
        "responses": {"200": _json("Rejected", {"type": "object", "properties": {
            "case_id": {"type": "string"}, "state": {"const": "rejected"}}}),
            "400": _BAD, **_AUTH,
            "404": _error("CASE_NOT_FOUND: no case with this id"),
            "409": _error("CASE_STATE: the case is not waiting for review"),
            "503": {"$ref": "#/components/responses/StorageUnavailable"}},
    }},
}

_SECONDS = {"type": ["number", "null"]}
_NODE: dict[str, Any] = {"type": "object", "properties": {
    "origin": {"type": "string"}, "name": {"type": ["string", "null"]},
    "last_seen_ms": {"type": ["integer", "null"]}}}

CASE_SCHEMAS: dict[str, Any] = {
    "OpenedCase": {
        "type": "object", "required": ["reference", "pin", "state", "records"],
        "properties": {
            "reference": {"type": "string", "pattern": "^([0-9A-HJKMNP-TV-Z]{4}-){3}"
                                                       "[0-9A-HJKMNP-TV-Z]{4}$"},
            "pin": {"type": "string", "pattern": "^[0-9]{8}$"},
            "state": {"type": "string", "enum": ["open", "pending_review"]},
            "records": {"type": "array", "items": {"type": "string"},
                        "description": "the signed add records (none while under review)"}}},
    "CaseSummary": {
        "type": "object", "description": "A case as operators see it: never its reference",
        "properties": {
            "case_id": {"type": "string"}, "state": {"type": "string"},
            "opened_ms": {"type": "integer"}, "opened_by": {"type": "string"},
            "items": {"type": "integer"},
            "records": {"type": "array", "items": {"type": "string"}},
            "hash_types": {"type": "object", "additionalProperties": {"type": "integer"},
                           "description": "hashes held for review, per type"}}},
    "CaseStatus": {
        "type": "object",
        "description": "Known nodes are the configured peers' origins and every node a "
                       "receipt came from; this node is not counted.",
        "properties": {
            "state": {"type": "string", "enum": ["pending_review", "open", "withdrawn"]},
            "opened_ms": {"type": "integer"}, "items": {"type": "integer"},
            "records": {"type": "integer"},
            "shared": {"type": "boolean", "description": "signed and sent to peers"},
            "active": {"type": "object", "description": "nodes whose receipts say every "
                       "record of the case matches there", "properties": {
                           "nodes": {"type": "integer"}, "of": {"type": "integer"},
                           "slowest_seconds": _SECONDS}},
            "feedback": {"type": "array", "description": "per organisation: how many items "
                         "(or records) it gave each verdict", "items": {
                             "type": "object", "properties": {
                                 "origin": {"type": "string"},
                                 "name": {"type": ["string", "null"]},
                                 "confirmed": {"type": "integer"},
                                 "actioned": {"type": "integer"},
                                 "disputed": {"type": "integer"},
                                 "not_ncii": {"type": "integer"}}}},
            "withdrawal": {"type": ["object", "null"], "properties": {
                "at_ms": {"type": "integer"},
                "signed": {"type": "boolean",
                           "description": "false for a case withdrawn before it was shared"},
                "stopped": {"type": "integer", "description": "nodes whose receipts say it "
                            "no longer matches there"},
                "of": {"type": "integer"}, "slowest_seconds": _SECONDS,
                "not_confirmed": {"type": "array", "items": _NODE}}},
            "nodes": {"type": "array", "items": {"type": "object", "properties": {
                **_NODE["properties"], "active_records": {"type": "integer"},
                "active_after_seconds": _SECONDS, "removed_after_seconds": _SECONDS}}},
            "words": {"type": "array", "items": {"type": "string"},
                      "description": "the same, in plain words, for a person"}}},
}
