"""The local API's OpenAPI 3.1 document, served at ``/v1/openapi.json``.

Written out by hand (not generated) so that it is the stable contract platforms code
against; a test checks that it lists exactly the routes the application serves.
"""

from __future__ import annotations

from typing import Any

from hashmesh.node.service import VERSION

HASH_TYPES = ["pdq", "md5", "sha256", "phash", "dhash", "ahash", "whash", "photodna"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return response


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "413": {"$ref": "#/components/responses/TooLarge"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["BAD_HASH_VALUE"]},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "location of the fault"},
            }}},
    },
    "Hash": {
        "type": "object", "required": ["type", "value"],
        "properties": {
            "type": {"type": "string", "enum": HASH_TYPES},
            "value": {"type": "string"},
            "quality": {"type": "integer", "minimum": 0, "maximum": 100,
                        "description": "pdq only"},
        },
    },
    "Item": {
        "type": "object", "required": ["hashes"],
        "properties": {
            "hashes": {"type": "array", "minItems": 1, "maxItems": 8, "items": _ref("Hash")},
            "list": {"type": "string", "description": "defaults to the node's default list"},
            "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
            "tier": {"type": "string", "default": "victim_submitted",
                     "enum": ["victim_submitted", "helpline_verified", "platform_confirmed"]},
            "expires": {"type": "integer", "description": "ms since the epoch"},
        },
    },
    "Distribution": {
        "type": "object", "required": ["scope"],
        "properties": {
            "scope": {"type": "string", "enum": ["all", "group", "peers"]},
            "group": {"type": "string"},
            "jurisdictions": {"type": "array", "items": {"type": "string",
                                                          "pattern": "^[A-Z]{2}$"}},
        },
    },
    "Match": {
        "type": "object",
        "properties": {
            "record": {"type": "string"}, "item": {"type": "string"},
            "origin": {"type": "string"}, "origin_name": {"type": ["string", "null"]},
            "list": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
            "tier": {"type": "string"}, "hash": _ref("Hash"),
            "distance": {"type": "integer"}, "threshold": {"type": "integer"},
            "expires": {"type": ["integer", "null"]},
            "feedback": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "MatchResult": {
        "type": "object",
        "properties": {
            "query": _ref("Hash"), "threshold": {"type": "integer"},
            "matches": {"type": "array", "items": _ref("Match")},
        },
    },
    "Written": {
        "type": "object", "properties": {"id": {"type": "string"}, "seq": {"type": "integer"}},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref("Error")}}}


PATHS: dict[str, Any] = {
    "/v1/records": {"post": {
        "summary": "Add items (content hashes) to this node's signed log",
        "requestBody": _json_body({
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref("Item")},
                           "dist": _ref("Distribution")}}),
        "responses": {"201": _ok("Signed records", {
            "type": "object", "properties": {"records": {"type": "array", "items": {
                "type": "object", "properties": {
                    "id": {"type": "string"}, "seq": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "string"}}}}}}}), **ERRORS},
    }},
    "/v1/revocations": {"post": {
        "summary": "Revoke this node's records or items (e.g. a victim's withdrawal)",
        "requestBody": _json_body({
            "type": "object", "required": ["targets", "reason"],
            "properties": {
                "targets": {"type": "array", "items": {"type": "string",
                            "description": "record id or <record id>/<item index>"}},
                "reason": {"type": "string", "enum": ["withdrawn", "erroneous", "expired",
                                                      "legal_order", "other"]}}}),
        "responses": {"201": _ok("Signed revoke record", _ref("Written")),
                      "404": {"$ref": "#/components/responses/NotFound"}, **ERRORS},
    }},
    "/v1/feedback": {"post": {
        "summary": "Record a verdict on any record or item",
        "requestBody": _json_body({
            "type": "object", "required": ["target", "verdict"],
            "properties": {
                "target": {"type": "string"},
                "verdict": {"type": "string",
                            "enum": ["confirmed", "not_ncii", "disputed", "actioned"]},
                "note": {"type": "string", "maxLength": 280}}}),
        "responses": {"201": _ok("Signed feedback record", _ref("Written")),
                      "404": {"$ref": "#/components/responses/NotFound"}, **ERRORS},
    }},
    "/v1/match": {"post": {
        "summary": "Match a batch of hashes against the hashes in force",
        "description": "Also served, with the same tokens and answers, by the node's match "
                       "workers on their own port when node.toml has [match_workers].",
        "requestBody": _json_body({
            "type": "object", "required": ["hashes"],
            "properties": {
                "hashes": {"type": "array", "items": {"oneOf": [
                    _ref("Hash"), {"type": "string", "description": "TYPE:VALUE"}]}},
                "thresholds": {"type": "object", "additionalProperties": {"type": "integer"}},
                "lists": {"type": "array", "items": {"type": "string"}}}}),
        "responses": {"200": _ok("One result per query hash", {
            "type": "object", "properties": {"results": {"type": "array",
                                                         "items": _ref("MatchResult")}}}),
            **ERRORS},
    }},
    "/v1/match/image": {"post": {
        "summary": "Hash an image in memory (never stored) and match its hashes",
        "parameters": [
            {"name": "list", "in": "query", "schema": {"type": "string"}},
            {"name": "threshold.pdq", "in": "query", "schema": {"type": "integer"}},
        ],
        "requestBody": {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": _ok("Hashes and matches", {
            "type": "object", "properties": {
                "hashes": {"type": "array", "items": _ref("Hash")},
                "results": {"type": "array", "items": _ref("MatchResult")}}}),
            "422": _error_response("Not a decodable image (code BAD_IMAGE)"), **ERRORS},
    }},
    "/v1/records/{id}": {"get": {
        "summary": "One signed record and the state of its hashes",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
        "responses": {"200": _ok("The record"),
                      "404": {"$ref": "#/components/responses/NotFound"}, **ERRORS},
    }},
    "/v1/status": {"get": {"summary": "Counts, origin id, version",
                           "responses": {"200": _ok("Status"), **ERRORS}}},
    "/v1/evidence": {"get": {"summary": "Stored equivocation evidence",
                             "responses": {"200": _ok("Evidence objects"), **ERRORS}}},
    "/v1/heads": {"get": {
        "summary": "Federation: the stub of each origin's latest record (NDJSON)",
        "security": [{"httpSignature": []}],
        "responses": {"200": {"description": "one signed stub per line",
                              "content": {"application/x-ndjson": {}}},
                      "401": {"$ref": "#/components/responses/Unauthorized"}},
    }},
    "/v1/log/{origin}": {"get": {
        "summary": "Federation: records of one origin after a seq, in seq order (NDJSON)",
        "security": [{"httpSignature": []}],
        "parameters": [
            {"name": "origin", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        ],
        "responses": {"200": {"description": "one exact signed envelope (or stub) per line",
                              "content": {"application/x-ndjson": {}}},
                      "401": {"$ref": "#/components/responses/Unauthorized"}},
    }},
    "/v1/notify": {"post": {
        "summary": "Federation: a hint that the caller has new records; pull soon",
        "security": [{"httpSignature": []}],
        "requestBody": _json_body({"type": "object", "properties": {"origins": {
            "type": "object", "additionalProperties": {"type": "integer"}}}}),
        "responses": {"202": _ok("Hint taken"),
                      "401": {"$ref": "#/components/responses/Unauthorized"}},
    }},
    "/v1/bodies": {"post": {
        "summary": "Federation: the full records, among the ids asked for, that the calling "
                   "peer may receive (fills the stubs it holds; protocol/SPEC.md 17.8)",
        "security": [{"httpSignature": []}],
        "requestBody": _json_body({"type": "object", "required": ["ids"], "properties": {
            "ids": {"type": "array", "minItems": 1, "maxItems": 256, "uniqueItems": True,
                    "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}),
        "responses": {"200": {"description": "one exact signed envelope per line; header "
                                             "Hashmesh-Bodies-Considered counts the ids looked "
                                             "at before the byte cap",
                              "content": {"application/x-ndjson": {}}},
                      "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"$ref": "#/components/responses/Unauthorized"}},
    }},
    "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                 "responses": {"200": _ok("OpenAPI document")}}},
    "/healthz": {"get": {"summary": "Liveness", "security": [],
                         "responses": {"200": _ok("Alive")}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (a token with the metrics scope, unless node.toml sets "
                   "[api] public_metrics = true)",
        "responses": {"200": {"description": "text exposition format"},
                      "401": _error_response("Missing or unknown token"),
                      "403": _error_response("The token lacks the metrics scope")}}},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "hashmesh node local API", "version": VERSION},
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "httpSignature": {
                    "type": "apiKey", "in": "header", "name": "Signature",
                    "description": "RFC 9421 ed25519 signature by a configured peer's "
                                   "node key; see protocol/SPEC.md"},
            },
            "schemas": SCHEMAS,
            "responses": {
                "BadRequest": _error_response("Malformed or invalid input"),
                "Unauthorized": _error_response("Missing or unknown token"),
                "Forbidden": _error_response("Token lacks the scope"),
                "NotFound": _error_response("No such record"),
                "TooLarge": _error_response("Body exceeds the configured limit"),
            },
        },
    }
