"""The OpenAPI entries of the change feed (``node/api/feed.py``) and the TAXII 2.1 routes
(``node/api/taxii.py``), merged into the document by ``node/api/openapi.py``.

Kept in a module of their own, with no imports from the API, so the routes' modules and the
document do not import each other.
"""

from __future__ import annotations

from typing import Any

TAXII = "application/taxii+json;version=2.1"
_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}
# A collection that names no list of this node.
_COLLECTION_ERRORS = {
    **_ERRORS,
    "404": {"$ref": "#/components/responses/NotFound"},
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _taxii(description: str, schema: dict[str, Any] | None = None,
           headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {TAXII: {"schema": schema or {"type": "object"}}}}
    if headers:
        response["headers"] = headers
    return response


_COLLECTION = {"name": "collection", "in": "path", "required": True,
               "description": "a collection id (one per list: uuid5 of the list name)",
               "schema": {"type": "string"}}
_PAGING = [
    _query("added_after", "only versions added after this time (X-TAXII-Date-Added-Last of "
           "the page before, or the last object's modified)",
           {"type": "string", "format": "date-time"}),
    _query("limit", "objects per page (1-5000, default 1000)",
           {"type": "integer", "minimum": 1, "maximum": 5000}),
    _query("next", "the next value of the page before (wins over added_after)",
           {"type": "string"}),
    _query("match[type]", "comma-separated STIX types; only indicator is served",
           {"type": "string"}),
    _query("match[version]", "last (default) or all", {"type": "string",
                                                       "enum": ["last", "all"]}),
    _query("match[spec_version]", "2.1", {"type": "string"}),
]
_DATE_HEADERS = {
    "X-TAXII-Date-Added-First": {"schema": {"type": "string", "format": "date-time"}},
    "X-TAXII-Date-Added-Last": {"schema": {"type": "string", "format": "date-time"}},
}

INTEROP_SCHEMAS: dict[str, Any] = {
    "Change": {
        "type": "object",
        "required": ["cursor", "kind", "at", "item", "record", "origin", "list", "hashes",
                     "in_force", "quarantined"],
        "properties": {
            "cursor": {"type": "string", "description": "this change's place in the log"},
            "kind": {"type": "string", "enum": ["add", "revoke", "expire", "verdict"],
                     "description": "revoke and expire are tombstones"},
            "at": {"type": "integer", "description": "when it was committed (ms)"},
            "item": {"type": "string", "description": "<record id>/<item>"},
            "record": {"type": "string"}, "origin": {"type": "string"},
            "list": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "tier": {"type": ["string", "null"]},
            "expires": {"type": ["integer", "null"]},
            "hashes": {"type": "array", "items": {"$ref": "#/components/schemas/Hash"},
                       "description": "the item's hashes (tombstones too)"},
            "verdicts": {"type": "object", "additionalProperties": {"type": "integer"},
                         "description": "federation-wide latest verdict counts, now"},
            "in_force": {"type": "boolean",
                         "description": "the item is neither revoked nor expired now"},
            "quarantined": {"type": "boolean",
                            "description": "the node's verdict policy holds the item "
                                           "disputed now (not_ncii from [match] "
                                           "dispute_origins origins, not confirmed by its "
                                           "own): a consumer of the current state drops it"},
            "by": {"type": "string", "description": "revoke, verdict: the record that made it"},
            "reason": {"type": "string", "description": "revoke: why"},
            "verdict": {"type": "string", "description": "verdict: the new verdict"},
            "verdict_origin": {"type": "string", "description": "verdict: who gave it"},
        },
    },
    "ChangePage": {
        "type": "object", "required": ["changes", "next", "more"],
        "properties": {
            "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
            "next": {"type": "string", "description": "the cursor to ask after next"},
            "more": {"type": "boolean"},
        },
    },
}

INTEROP_PATHS: dict[str, Any] = {
    "/v1/changes": {"get": {
        "summary": "The change feed: adds, revokes, expiries and verdicts of items, in commit "
                   "order, after a cursor (never skips or repeats; survives restarts)",
        "parameters": [
            _query("after", "a cursor from a page before (next or a change's cursor); 0 or "
                   "absent: from the start", {"type": "string", "pattern": "^[0-9]{1,19}$"}),
            _query("limit", "changes per page (1-5000, default 1000)",
                   {"type": "integer", "minimum": 1, "maximum": 5000}),
            {**_query("list", "only these lists (repeatable)", {"type": "array",
                                                                "items": {"type": "string"}}),
             "explode": True},
        ],
        "responses": {"200": {"description": "A page of changes", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ChangePage"}}}},
            **_ERRORS},
    }},
    "/taxii2/": {"get": {"summary": "TAXII 2.1 discovery (read scope)",
                         "responses": {"200": _taxii("Discovery"), **_ERRORS}}},
    "/taxii2/api/": {"get": {"summary": "The TAXII API root",
                             "responses": {"200": _taxii("API root"), **_ERRORS}}},
    "/taxii2/api/collections/": {"get": {
        "summary": "One read-only collection per list",
        "responses": {"200": _taxii("Collections"), **_ERRORS}}},
    "/taxii2/api/collections/{collection}/": {"get": {
        "summary": "A collection", "parameters": [_COLLECTION],
        "responses": {"200": _taxii("Collection"), **_COLLECTION_ERRORS}}},
    "/taxii2/api/collections/{collection}/objects/": {"get": {
        "summary": "STIX 2.1 indicators of the list's items (a withdrawal is a version with "
                   "revoked: true); next is always sent when more is true",
        "parameters": [_COLLECTION, *_PAGING],
        "responses": {"200": _taxii("Envelope", headers=_DATE_HEADERS), **_COLLECTION_ERRORS}}},
    "/taxii2/api/collections/{collection}/manifest/": {"get": {
        "summary": "The manifest of the same objects",
        "parameters": [_COLLECTION, *_PAGING],
        "responses": {"200": _taxii("Manifest", headers=_DATE_HEADERS), **_COLLECTION_ERRORS}}},
}
