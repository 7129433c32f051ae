"""The local API's OpenAPI 3.1 document, served at ``/v1/openapi.json``.

Written out by hand (not generated) so that it is the stable contract platforms code
against; a test checks that it lists exactly the routes the application serves, and a
property-based fuzzer (schemathesis, ``tests/node/test_openapi_fuzz.py``) that a running node
answers every input the document allows or forbids without a 500, with a documented status.
Array and page limits come from the node's ``[limits]``, so the document is per node.
"""

from __future__ import annotations

import copy
from typing import Any

from hashmesh.node.api.openapi_cases import CASE_PATHS, CASE_SCHEMAS
from hashmesh.node.api.openapi_interop import INTEROP_PATHS, INTEROP_SCHEMAS
from hashmesh.node.config.node import LimitsConfig
from hashmesh.node.service import VERSION
from hashmesh.protocol.hashtypes import get_hash_type

HASH_TYPES = ["pdq", "md5", "sha256", "phash", "dhash", "ahash", "whash", "photodna"]
VERDICT = {"type": "string", "enum": ["none", "weak", "disputed", "match"],
           "description": "match: act on it. weak: one 64-bit hash only, never act on it alone. "
                          "disputed: would be a match, but trusted origins said not_ncii. "
                          "none: nothing matched (top level only). See README."}
TRANSFORM = {"type": "string", "description": (
    "which variant of the query image the hash was taken from: original, rotate90, rotate180, "
    "rotate270 (counter-clockwise), flip_horizontal, flip_vertical, transpose, transverse, "
    "trimmed (uniform margin or caption bar cut off) or trimmed+<one of those>. Only pdq "
    "hashes carry one.")}
POLICY = {
    "type": "object", "description": "A stricter verdict policy for this query; looser than "
    "the node's is a 400 error.",
    "properties": {
        "corroboration": {"type": "integer", "minimum": 1, "maximum": 4,
                          "description": "independent 64-bit hashes needed for a match"},
        "transforms": {"type": "boolean",
                       "description": "false: a hit only through a flip, rotation or trimmed "
                                      "margin is weak, not a match"}}}


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
# Writes are refused with 409 when the store cannot take them: signing blocked after a
# restored backup, a frozen origin (codes ORIGIN_FROZEN, STORE_ERROR).
# 503 (STORAGE_UNAVAILABLE) when the database cannot be written (disk full): nothing stored.
WRITE_ERRORS = {**ERRORS, "409": {"$ref": "#/components/responses/Conflict"},
                "503": {"$ref": "#/components/responses/StorageUnavailable"}}
PEER_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "421": {"$ref": "#/components/responses/Misdirected"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
MAX_SEQ = 2**53 - 1

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
        "type": "object", "required": ["type", "value"], "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": HASH_TYPES},
            "value": {"type": "string"},
            "quality": {"type": "integer", "minimum": 0, "maximum": 100,
                        "description": "pdq only"},
        },
    },
    "HashQuery": {
        "type": "object", "required": ["type", "value"], "additionalProperties": False,
        "description": "A hash to match: no quality (a match is by value alone); a PDQ value "
                       "may name the transform of the image it was computed from",
        "properties": {
            "type": {"type": "string", "enum": HASH_TYPES},
            "value": {"type": "string"},
            "transform": TRANSFORM,
        },
    },
    "MatchedHash": {
        "type": "object", "required": ["type", "value", "quality"],
        "properties": {
            "type": {"type": "string", "enum": HASH_TYPES},
            "value": {"type": "string"},
            "quality": {"type": ["integer", "null"]},
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
            "group": {"type": "string",
                      "description": "with scope group: a local name from node.toml [groups] "
                                     "(resolved to its opaque id before signing) or the "
                                     "32-hex id itself; records always carry the id"},
            "jurisdictions": {"type": "array", "items": {"type": "string",
                                                          "pattern": "^[A-Z]{2}$"}},
        },
    },
    "Match": {
        "type": "object",
        "properties": {
            "record": {"type": "string"}, "item": {"type": "string"},
            "origin": {"type": "string"}, "origin_name": {"type": ["string", "null"]},
            "origin_profile": {"oneOf": [{"type": "null"}, _ref("OriginProfile")]},
            "list": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
            "tier": {"type": "string"}, "hash": _ref("MatchedHash"),
            "distance": {"type": "integer"}, "threshold": {"type": "integer"},
            "expires": {"type": ["integer", "null"]},
            "feedback": {"type": "object", "additionalProperties": {"type": "integer"}},
            "verdict": VERDICT,
        },
    },
    "MatchResult": {
        "type": "object",
        "properties": {
            "query": _ref("HashQuery"), "threshold": {"type": "integer"},
            "matches": {"type": "array", "items": _ref("Match")},
        },
    },
    "MatchedItem": {
        "type": "object", "description": "One stored item that the query hit, and its verdict",
        "properties": {
            "item": {"type": "string"}, "record": {"type": "string"},
            "origin": {"type": "string"}, "verdict": VERDICT,
            "hits": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "distance": {"type": "integer"},
                "threshold": {"type": "integer"}, "transform": TRANSFORM}}},
            "not_ncii_origins": {"type": "integer", "description":
                                 "trusted origins whose standing verdict is not_ncii"},
        },
    },
    "MatchAnswer": {
        "type": "object",
        "properties": {
            "verdict": VERDICT,
            "policy": {"type": "object", "description": "the policy the verdicts were made by"},
            "items": {"type": "array", "items": _ref("MatchedItem")},
            "results": {"type": "array", "items": _ref("MatchResult")},
        },
    },
    "OriginProfile": {
        "type": "object", "required": ["name", "self_declared"],
        "description": "how the origin is named here: pinned by peers.toml (or this node's "
                       "own name), else by the origin's own signed profile (self_declared)",
        "properties": {
            "name": {"type": "string"}, "self_declared": {"type": "boolean"},
            "declared": {"type": "object", "description": "the profile the origin signed",
                         "properties": {"name": {"type": "string"},
                                        "jurisdiction": {"type": "string"},
                                        "contact": {"type": "string"}}}},
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
        "description": "All the records an add needs are signed in one transaction: stored "
                       "whole or not at all, so a failed request can be retried.",
        "requestBody": _json_body({
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": "max_add_items",
                                     "items": _ref("Item")},
                           "dist": _ref("Distribution")}}),
        "responses": {"201": _ok("Signed records", {
            "type": "object", "properties": {"records": {"type": "array", "items": {
                "type": "object", "properties": {
                    "id": {"type": "string"}, "seq": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "string"}}}}}}}),
            **WRITE_ERRORS},
    }},
    "/v1/revocations": {"post": {
        "summary": "Revoke this node's records or items (e.g. a victim's withdrawal)",
        "requestBody": _json_body({
            "type": "object", "required": ["targets", "reason"],
            "properties": {
                "targets": {"type": "array", "minItems": 1, "maxItems": "max_targets",
                            "items": {"type": "string",
                                      "description": "record id or <record id>/<item index>"}},
                "reason": {"type": "string", "enum": ["withdrawn", "erroneous", "expired",
                                                      "legal_order", "other"]}}}),
        "responses": {"201": _ok("Signed revoke record", _ref("Written")),
                      "404": {"$ref": "#/components/responses/NotFound"}, **WRITE_ERRORS},
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
                      "404": {"$ref": "#/components/responses/NotFound"}, **WRITE_ERRORS},
    }},
    "/v1/profile": {"post": {
        "summary": "Sign this origin's profile (SPEC §4.6): a display name, and optionally a "
                   "jurisdiction and a contact, that travel with its log",
        "description": "Other nodes show it marked self-declared unless their peers.toml pins "
                       "this origin. The latest profile is in force.",
        "requestBody": _json_body({
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "jurisdiction": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "contact": {"type": "string", "minLength": 1, "maxLength": 128}}}),
        "responses": {"201": _ok("Signed profile record", _ref("Written")), **WRITE_ERRORS},
    }},
    "/v1/match": {"post": {
        "summary": "Match the hashes of one image against the hashes in force",
        "description": "All hashes of a request are taken to be of one image: hits on one "
                       "stored item corroborate each other. Several pdq values (a platform's "
                       "own flips and rotations) may be sent, each naming its transform. "
                       "Also served, with the same tokens and answers, by the node's match "
                       "workers on their own port when node.toml has [match_workers].",
        "requestBody": _json_body({
            "type": "object", "required": ["hashes"],
            "properties": {
                "hashes": {"type": "array", "minItems": 1, "maxItems": "max_batch",
                           "items": {"oneOf": [
                               _ref("HashQuery"),
                               {"type": "string", "description": "TYPE:VALUE"}]}},
                "thresholds": {"type": "object", "additionalProperties": {"type": "integer"}},
                "lists": {"type": "array", "items": {"type": "string"}},
                "policy": POLICY}}),
        "responses": {"200": _ok("A verdict, the matched items, one result per query hash",
                                 _ref("MatchAnswer")),
            **ERRORS},
    }},
    "/v1/match/image": {"post": {
        "summary": "Hash an image in memory (never stored) and match its hashes",
        "parameters": [
            {"name": "list", "in": "query", "schema": {"type": "string"}},
            {"name": "threshold.pdq", "in": "query",
             "schema": {"type": "integer", "minimum": 0,
                        "maximum": get_hash_type("pdq").max_threshold},
             "description": "likewise threshold.<type> for each hash type; ASCII digits"},
            {"name": "policy.corroboration", "in": "query", "schema": {"type": "integer"}},
            {"name": "policy.transforms", "in": "query",
             "schema": {"type": "string", "enum": ["true", "false"]}},
        ],
        "requestBody": {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}}}},
        "description": "Looks up the image's own hashes, the pdq of its 8 flips and rotations, "
                       "and, where it has a uniform margin or a caption bar, of the picture "
                       "inside it. results "
                       "lists every own hash, and a variant only where it found something.",
        "responses": {"200": _ok("The image's own hashes, a verdict and matches", {
            "allOf": [_ref("MatchAnswer"), {"type": "object", "properties": {
                "hashes": {"type": "array", "items": _ref("Hash")}}}]}),
            "422": _error_response("Not a decodable image (code BAD_IMAGE)"), **ERRORS},
    }},
    "/v1/records/{id}": {"get": {
        "summary": "One signed record, the state of its hashes, and its receipts",
        "description": "`receipts`: every node's receipt of this record held here (SPEC §21): "
                       "`node` (origin id), `name` (the peer name we gave it, or null), `kind` "
                       "(`active` for an add, `removed` for a revoke), `applied_ms` (that "
                       "node's clock), `after_ms` (applied_ms minus the record's ts), "
                       "`receipt` (the receipt record's id).",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
        "responses": {"200": _ok("The record"),
                      "404": {"$ref": "#/components/responses/NotFound"}, **ERRORS},
    }},
    "/v1/index/check": {"get": {
        "summary": "Whether the match index holds exactly the hashes in force in the store",
        "description": "What `hashmesh verify --index` calls. `missing`: in force in the store, "
                       "not matched; `extra`: matched, not in force (first 20 ids of each).",
        "responses": {"200": _ok("The comparison", {
            "type": "object", "required": ["ok", "store", "index", "missing", "extra"],
            "properties": {
                "ok": {"type": "boolean"}, "store": {"type": "integer"},
                "index": {"type": "integer"},
                "missing": {"type": "array", "items": {"type": "integer"}},
                "missing_count": {"type": "integer"},
                "extra": {"type": "array", "items": {"type": "integer"}},
                "extra_count": {"type": "integer"}}}), **ERRORS},
    }},
    "/v1/status": {"get": {"summary": "Counts, origin id, version, this origin's disputed "
                                      "items, checkpoint state and alarms (checkpoints), "
                                      "per-node receipt figures",
                           "description": "`receipts.nodes`: per node we hold records of, "
                                          "`time_to_active` and `time_to_removal` (count, "
                                          "p50, p90, p99, max in seconds, from the receipts of "
                                          "the last `window_days`; null without any) and "
                                          "`last_heard_ms`. `receipts.waiting_for_target`: "
                                          "receipt rows whose target is not held (yet).",

                           "responses": {"200": _ok("Status"), **ERRORS}}},
    "/v1/audit": {"get": {
        "summary": "The hash-chained audit trail (a token with the audit scope): ?after=ID "
                   "pages oldest first (follow next while more), ?last=N the newest N; each "
                   "row carries prev and hash (README, 'Audit trail')",
        "parameters": [
            {"name": "after", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
             "description": "the last row id read (0 or absent: from the first row)"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 5000},
             "description": "rows per page (default 500)"},
            {"name": "last", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 5000},
             "description": "instead of after: the newest N rows"}],
        "responses": {"200": _ok("rows, next (a cursor), more, and head: the newest row's id "
                                 "and hash signed by the node key"),
                      "401": _error_response("Missing or unknown token"),
                      "403": _error_response("The token lacks the audit scope"),
                      "400": _error_response("A bad query parameter (named)")}}},
    "/v1/evidence": {"get": {"summary": "Stored equivocation evidence",
                             "responses": {"200": _ok("Evidence objects"), **ERRORS}}},
    "/v1/heads": {"get": {
        "summary": "Federation: the stub of each origin's latest record (NDJSON)",
        "security": [{"httpSignature": []}],
        "responses": {"200": {"description": "one signed stub per line",
                              "content": {"application/x-ndjson": {}}}, **PEER_ERRORS},
    }},
    "/v1/log/{origin}": {"get": {
        "summary": "Federation: records of one origin after a seq, in seq order (NDJSON)",
        "security": [{"httpSignature": []}],
        "parameters": [
            {"name": "origin", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "after", "in": "query",
             "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
             "description": "records the caller takes; the page holds at most the lower of "
                            "this and the server's max_page_records"},
            {"name": "max_bytes", "in": "query",
             "schema": {"type": "integer", "minimum": 65536, "maximum": MAX_SEQ},
             "description": "bytes the caller takes; the page stays within the lower of this "
                            "and the server's max_page_bytes (but holds at least one record)"},
        ],
        "responses": {"200": {"description": "one exact signed envelope (or stub) per line",
                              "content": {"application/x-ndjson": {}}}, **PEER_ERRORS},
    }},
    "/v1/checkpoints": {"get": {
        "summary": "Federation: every checkpoint this node keeps, cosignatures merged "
                   "(NDJSON, SPEC §20.3)",
        "security": [{"httpSignature": []}],
        "responses": {"200": {"description": "one canonical checkpoint per line",
                              "content": {"application/x-ndjson": {}}}, **PEER_ERRORS},
    }},
    "/v1/proofs": {"get": {
        "summary": "Federation: equivocation evidence and split-view proofs this node holds "
                   "(NDJSON, SPEC §20.3)",
        "security": [{"httpSignature": []}],
        "responses": {"200": {"description": "one canonical proof per line (kind "
                                             "equivocation or split_view)",
                              "content": {"application/x-ndjson": {}}}, **PEER_ERRORS},
    }},
    "/v1/notify": {"post": {
        "summary": "Federation: a hint that the caller has new records; pull soon",
        "security": [{"httpSignature": []}],
        "requestBody": _json_body({"type": "object", "properties": {"origins": {
            "type": "object", "additionalProperties": {"type": "integer"}}}}),
        "responses": {"202": _ok("Hint taken"), **PEER_ERRORS},
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
                      "401": {"$ref": "#/components/responses/Unauthorized"},
                      "413": {"$ref": "#/components/responses/TooLarge"}},
    }},
    "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                 "responses": {"200": _ok("OpenAPI document")}}},
    "/healthz": {"get": {"summary": "Liveness", "security": [],
                         "responses": {"200": _ok("Alive")}}},
    "/healthz/signer": {"get": {
        "summary": "Whether this process signs (holds the signer lease); for a load balancer "
                   "that sends writes to the one process that takes them",
        "security": [],
        "responses": {"200": _ok("This process signs"),
                      "503": _ok("Another process signs (or none, during a failover)")}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (a token with the metrics scope, unless node.toml sets "
                   "[api] public_metrics = true)",
        "responses": {"200": {"description": "text exposition format"},
                      "401": _error_response("Missing or unknown token"),
                      "403": _error_response("The token lacks the metrics scope")}}},
    # The status page (node/api/page.py): HTML for a person, signed in with a session cookie
    # that a token is exchanged for; every form carries a CSRF token.
    "/ui": {"get": {"summary": "Redirects to /ui/", "security": [],
                    "responses": {"303": {"description": "to /ui/"}}}},
    "/ui/": {"get": {"summary": "Status page (HTML; session cookie)", "security": [],
                     "responses": {"200": {"description": "text/html"},
                                   "303": {"description": "to /ui/login without a session"}}}},
    "/ui/login": {
        "get": {"summary": "Login form (HTML)", "security": [],
                "responses": {"200": {"description": "text/html"}}},
        "post": {"summary": "Exchange a token (form field token, with csrf) for a session",
                 "security": [],
                 "responses": {"303": {"description": "signed in: to /ui/"},
                               "401": {"description": "unknown token, or no read scope"},
                               "403": {"description": "CSRF check failed"}}}},
    "/ui/logout": {"post": {"summary": "End the session (form field csrf)", "security": [],
                            "responses": {"303": {"description": "to /ui/login"},
                                          "403": {"description": "CSRF check failed"}}}},
    "/ui/static/page.css": {"get": {"summary": "The page's stylesheet", "security": [],
                                    "responses": {"200": {"description": "text/css"}}}},
}


def _with_limits(value: Any, limits: LimitsConfig) -> Any:
    """The paths with the names of limits (``"maxItems": "max_batch"``) replaced by this
    node's values."""
    numbers = {"max_batch": limits.max_batch, "max_add_items": limits.max_add_items,
               "max_targets": min(limits.max_batch, 256)}
    if isinstance(value, dict):
        return {key: numbers[item] if key == "maxItems" and isinstance(item, str)
                else _with_limits(item, limits) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_limits(item, limits) for item in value]
    return value


def openapi_document(limits: LimitsConfig | None = None) -> dict[str, Any]:
    """The document for a node with these ``[limits]`` (the defaults if none)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "hashmesh node local API", "version": VERSION},
        "security": [{"bearer": []}],
        "paths": _with_limits(copy.deepcopy({**PATHS, **INTEROP_PATHS, **CASE_PATHS}),
                              limits or LimitsConfig()),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "httpSignature": {
                    "type": "apiKey", "in": "header", "name": "Signature",
                    "description": "RFC 9421 ed25519 signature by a configured peer's "
                                   "node key; see protocol/SPEC.md"},
            },
            "schemas": {**SCHEMAS, **INTEROP_SCHEMAS, **CASE_SCHEMAS},
            "responses": {
                "BadRequest": _error_response("Malformed or invalid input"),
                "Unauthorized": _error_response("Missing or unknown token"),
                "Forbidden": _error_response("Token lacks the scope"),
                "NotFound": _error_response("No such record"),
                "TooLarge": _error_response("Body exceeds the configured limit"),
                "Conflict": _error_response("The store refuses the write (signing blocked "
                                            "after a restored backup, a frozen origin; "
                                            "NOT_LEADER: no process of the node signs "
                                            "during a failover, retry)"),
                "StorageUnavailable": _error_response(
                    "The database cannot be written now (disk full; LEADER_UNREACHABLE: "
                    "the process that signs, to which this one forwards writes, did not "
                    "answer); the request can be retried"),
                "Misdirected": _error_response("The signature names another node's address "
                                               "(WRONG_AUTHORITY)"),
                "Unavailable": _error_response("Too many recent signed requests to check "
                                               "for replays (NONCE_CACHE_FULL); retry later"),
            },
        },
    }
