"""TAXII 2.1, read-only: this node's lists as STIX 2.1 indicators, for threat-intel tools.

Why: teams that run STIX/TAXII tooling (OpenCTI, MISP, taxii2-client scripts) can follow a
node without custom code. The server is a view of the change log (``node/store/changes.py``):

- discovery at ``/taxii2/``, one API root ``/taxii2/api/``, one collection per list of
  ``[lists] allowed`` (its id a uuid5 of the list name);
- each item is one ``indicator`` whose id is a uuid5 of its ref (``<record id>/<item>``), so
  every version of it, on every node that holds the record, has the same id;
- an item's first version is its add; a revoke or an expiry makes a new version with
  ``revoked: true`` and a later ``modified``. Verdicts are not versions (they are counts that
  change; read them from ``/v1/changes``);
- ``date_added`` of a version is the change's time in µs, strictly increasing in commit
  order, so ``added_after`` resumes exactly where ``X-TAXII-Date-Added-Last`` left off, and
  ``next`` is the change log's cursor. A version's ``modified`` is its ``date_added``, so a
  client that keeps only objects (taxii2-client's ``as_pages`` drops the headers) resumes
  with ``added_after`` = the last ``modified`` it saw.

Hash patterns: MD5 and SHA-256 are the standard ``file:hashes.MD5`` / ``file:hashes.'SHA-256'``;
the perceptual hashes (pdq, phash, ...) go under ``x_``-prefixed keys (``file:hashes.x_pdq``)
with the node's match thresholds in ``x_hashmesh_thresholds``. Objects are plain dicts, checked
by ``stix2-validator`` in the tests (the ``stix2`` library would add a runtime dependency to
build a handful of fields).

Auth is the local API's: a bearer token with the ``read`` scope (``routes.ROUTE_SCOPES``).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

from aiohttp import web

from hashmesh.node.api.feed import MAX_LIMIT, parse_cursor, parse_limit, quarantined
from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.matching.verdicts import Policy
from hashmesh.node.runtime.metrics import labelled
from hashmesh.node.runtime.pressure import CHUNK, PagePacer
from hashmesh.node.runtime.web import ApiError
from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import Store

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
# uuid5 namespace of every id this node derives (objects, collections)
NAMESPACE = uuid.UUID("2c4b5c1e-0d0b-5d55-9a53-6861736d6573")
NAMESPACE_BYTES = NAMESPACE.bytes
DEFAULT_LIMIT = 1000
# a page scans at most this many change rows per object it may return (superseded versions
# are skipped), so a request's work stays bounded
SCAN_FACTOR = 20
STANDARD_HASHES = {"md5": "MD5", "sha256": "'SHA-256'"}
TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")
OBJECT_PARAMS = {"added_after", "limit", "next", "match[type]", "match[version]",
                 "match[spec_version]"}


def object_id(item_ref: str) -> str:
    """``indicator--`` and ``uuid5(NAMESPACE, "item:" + ref)``, computed here with hashlib:
    the ``uuid`` module's objects cost a third of a TAXII page's work."""
    digest = bytearray(hashlib.sha1(NAMESPACE_BYTES + b"item:" + item_ref.encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"indicator--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def collection_id(list_name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "list:" + list_name))


def stix_time(us: int) -> str:
    """A STIX timestamp with microseconds from µs since the epoch (no float rounding)."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_second(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=1024)
def _second(seconds: int) -> str:
    """The date and time of a second: a page's objects share a few of them."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value: str, field: str) -> int:
    """A STIX/TAXII timestamp to µs since the epoch; anything else is a located 400."""
    match = TIMESTAMP.fullmatch(value)
    if match is None:
        raise ApiError(400, "BAD_FILTER", f"{field}: expected a timestamp like "
                       f"2026-01-31T12:00:00.000Z, got {value[:40]!r}", field)
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute),
                          int(second), tzinfo=UTC)
    except ValueError as exc:
        raise ApiError(400, "BAD_FILTER", f"{field}: {exc}", field) from None
    micros = int((fraction or "0").ljust(9, "0")[:6])
    return (int(moment.timestamp()) * 1_000_000) + micros


def indicator(row: tuple[Any, ...], add_ts: int, revoked_at: int | None,
              thresholds: dict[str, int]) -> dict[str, Any]:
    """One version of an item's indicator: the add (``revoked_at`` None) or its withdrawal."""
    _, _, _, _, record_id, origin, item, list_name, hashes, _ = row
    ref = f"{record_id}/{item}"
    created = stix_time(add_ts)
    comparisons = []
    perceptual = {}
    for hash_type, value, *_ in hashes:
        key = STANDARD_HASHES.get(hash_type) or f"x_{hash_type}"
        comparisons.append(f"file:hashes.{key} = '{value}'")
        if hash_type not in STANDARD_HASHES:
            perceptual[hash_type] = thresholds[hash_type]
    labels = json.loads(hashes[0][3] or "[]") if hashes else []
    tier, expires = (hashes[0][4], hashes[0][5]) if hashes else (None, None)
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": object_id(ref),
        "created": created,
        "modified": created if revoked_at is None else stix_time(revoked_at),
        "name": f"hashmesh {list_name} item {ref}",
        "description": "Hashes of an image reported as non-consensual intimate imagery; "
                       "match with the thresholds given, never share the image",
        # an item whose hashes retention erased keeps a pattern that matches no file
        "pattern": "[" + (" OR ".join(comparisons) or f"file:x_hashmesh_item = '{ref}'") + "]",
        "pattern_type": "stix",
        "valid_from": created,
        "x_hashmesh_item": ref, "x_hashmesh_origin": origin, "x_hashmesh_list": list_name,
    }
    if expires is not None and expires * 1000 > add_ts:
        obj["valid_until"] = stix_time(expires * 1000)
    if labels:
        obj["labels"] = labels
    if tier:
        obj["x_hashmesh_tier"] = tier
    if perceptual:
        obj["x_hashmesh_thresholds"] = perceptual
    if revoked_at is not None:
        obj["revoked"] = True
    return obj


def read_objects(store: Store, after: int, limit: int, list_name: str, every_version: bool,
                 thresholds: dict[str, int], policy: Policy | None = None
                 ) -> tuple[list[tuple[int, dict[str, Any]]], int, bool]:
    """Up to ``limit`` (date_added µs, indicator) of one list after cursor ``after``, the
    cursor after the last one returned, and whether more may follow.

    With ``every_version`` False (TAXII's default ``match[version]=last``) an add that was
    since revoked, expired or quarantined is skipped: its revoked version comes later in the
    log. A quarantined item (the verdict policy holds it ``disputed``: ``feed.quarantined``)
    is revoked at its latest ``verdict`` change, or at its add if the verdicts came first.
    STIX forbids un-revoking, so an item whose quarantine is lifted later stays revoked here
    (the change feed and the pytx extension take it back).
    """
    policy = policy or Policy()
    found: list[tuple[int, dict[str, Any]]] = []
    cursor, scanned = after, 0
    while len(found) < limit and scanned < SCAN_FACTOR * limit:
        rows = store.changes_after(cursor, limit, (list_name,))
        if not rows:
            return found, cursor, False
        versions = store.item_versions(row[9] for row in rows)
        held = quarantined(store, rows, policy)
        last_verdict = store.last_verdicts(row[9] for row in rows) if held else {}
        for row in rows:
            seq, kind, ts = row[0], row[1], row[2]
            key = (row[9], row[6])
            add_ts, first_tombstone, tombstone_ts = versions.get(key, (ts, None, None))
            scanned += 1
            cursor = seq
            if (row[4], row[6]) in held and first_tombstone is None:
                verdict_seq = last_verdict.get(key)
                if kind == "add" and verdict_seq is not None and verdict_seq > seq:
                    if every_version:
                        found.append((ts, indicator(row, add_ts, None, thresholds)))
                elif (kind == "add" and (verdict_seq is None or verdict_seq < seq)) or (
                        kind == "verdict" and seq == verdict_seq):
                    found.append((ts, indicator(row, add_ts, ts, thresholds)))
            elif kind == "add" and (every_version or first_tombstone is None):
                found.append((ts, indicator(row, add_ts, None, thresholds)))
            elif kind in ("revoke", "expire") and seq == first_tombstone:
                found.append((ts, indicator(row, add_ts, tombstone_ts, thresholds)))
            if len(found) == limit:
                break
        if len(found) < limit and len(rows) < limit:
            return found, cursor, False  # every row read: the log is exhausted
    more = bool(store.changes_after(cursor, 1, (list_name,)))
    return found, cursor, more


def taxii_response(body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
                   ) -> web.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return web.Response(body=data, headers={"Content-Type": TAXII_MEDIA_TYPE,
                                            **(headers or {})})


def encode_envelope(more: bool, cursor: int, objects: list[str]) -> bytes:
    """An envelope's JSON around objects already encoded one by one on the reader thread (a
    page encoded at once holds the GIL for ~10 ms, which match answers would wait for)."""
    parts = [f'"more": {"true" if more else "false"}']
    if more:
        parts.append(f'"next": "{cursor}"')
    if objects:
        parts.append(f'"objects": [{", ".join(objects)}]')
    return ("{" + ", ".join(parts) + "}").encode()


def _check_accept(request: web.Request) -> None:
    accept = request.headers.get("Accept", "")
    if accept and not any(kind in accept for kind in ("application/taxii+json", "*/*",
                                                      "application/*")):
        raise ApiError(406, "NOT_ACCEPTABLE", f"this TAXII server answers {TAXII_MEDIA_TYPE}",
                       "Accept")


def _lists(service: NodeService) -> tuple[str, ...]:
    return service.config.lists.allowed


def _collection(list_name: str) -> dict[str, Any]:
    return {"id": collection_id(list_name), "title": list_name,
            "description": f"the {list_name} hash list of this hashmesh node, read-only",
            "can_read": True, "can_write": False, "media_types": [STIX_MEDIA_TYPE]}


def _find_collection(request: web.Request) -> str:
    wanted = request.match_info["collection"]
    for list_name in _lists(request.app[SERVICE_KEY]):
        if collection_id(list_name) == wanted:
            return list_name
    raise ApiError(404, "NOT_FOUND", f"no collection {wanted[:40]!r} on this API root",
                   "collection")


async def discovery(request: web.Request) -> web.Response:
    _check_accept(request)
    root = f"{request.url.origin()}/taxii2/api/"
    service = request.app[SERVICE_KEY]
    return taxii_response({"title": f"hashmesh node {service.config.name}",
                           "description": "read-only TAXII 2.1 view of this node's lists",
                           "default": root, "api_roots": [root]})


async def api_root(request: web.Request) -> web.Response:
    _check_accept(request)
    service = request.app[SERVICE_KEY]
    return taxii_response({"title": f"hashmesh node {service.config.name}",
                           "versions": [TAXII_MEDIA_TYPE],
                           "max_content_length": service.config.limits.max_body_bytes})


async def collections(request: web.Request) -> web.Response:
    _check_accept(request)
    return taxii_response({"collections": [_collection(name)
                                           for name in _lists(request.app[SERVICE_KEY])]})


async def collection(request: web.Request) -> web.Response:
    _check_accept(request)
    return taxii_response(_collection(_find_collection(request)))


async def objects(request: web.Request) -> web.Response:
    """Get Objects (TAXII 2.1 §5.4), and Get Object Manifests (§5.3) for ``/manifest/``."""
    _check_accept(request)
    list_name = _find_collection(request)
    service = request.app[SERVICE_KEY]
    query = request.query
    for name in query:
        if name not in OBJECT_PARAMS:
            raise ApiError(400, "UNKNOWN_FIELD", f"unknown or unsupported query parameter "
                           f"{name!r} (supported: {', '.join(sorted(OBJECT_PARAMS))})", name)
    limit = parse_limit(query.get("limit"), "limit", MAX_LIMIT, DEFAULT_LIMIT)
    version = query.get("match[version]", "last")
    if version not in ("last", "all"):
        raise ApiError(400, "BAD_FILTER", "match[version]: this server answers 'last' or "
                       f"'all', got {version[:40]!r}", "match[version]")
    types = set(query.get("match[type]", "indicator").split(","))
    spec = set(query.get("match[spec_version]", "2.1").split(","))
    if "next" in query:
        after = parse_cursor(query["next"], "next")
        last = await service.store.read(lambda s: s.last_change())
        if after > last:
            raise ApiError(400, "BAD_CURSOR", "next: not a value this server gave", "next")
    elif "added_after" in query:
        since = parse_time(query["added_after"], "added_after")
        after = await service.store.read(lambda s: s.change_seq_at(since))
    else:
        after = 0
    manifest = request.path.endswith("/manifest/")
    policy = Policy.from_config(service.config.match)
    thresholds = {name: service.config.match.threshold_for(name)
                  for name in ("pdq", "phash", "dhash", "ahash", "whash", "photodna")}

    def chunk(store: Store, after: int, limit: int) -> tuple[list[str], int, int, int, bool]:
        """Up to ``limit`` objects after ``after`` as JSON texts, the first and last
        date_added, the cursor after them and whether more may follow (reader thread)."""
        found, cursor, more = read_objects(store, after, limit, list_name, version == "all",
                                           thresholds, policy)
        texts = [json.dumps({"id": obj["id"], "date_added": stix_time(added),
                             "version": obj["modified"], "media_type": STIX_MEDIA_TYPE}
                            if manifest else obj) for added, obj in found]
        first, last = (found[0][0], found[-1][0]) if found else (0, 0)
        return texts, first, last, cursor, more

    texts: list[str] = []
    first = last = 0
    cursor, more = after, "indicator" in types and "2.1" in spec
    pacer = PagePacer(service.matching.pressure,
                      labelled(service.metrics.feed_yields, "taxii").inc)
    while more and len(texts) < limit:
        if texts:
            await pacer.pause()  # matching goes first (``runtime/pressure.py``)
        want = min(CHUNK, limit - len(texts))
        got, chunk_first, last_in_chunk, cursor, more = await service.store.read(
            partial(chunk, after=cursor, limit=want))
        if got:
            first = first or chunk_first
            last = last_in_chunk
        texts.extend(got)
        if len(got) < want:
            break  # the chunk hit its scan bound (or the log's end): the page ends here
    headers = {}
    if texts:
        headers = {"X-TAXII-Date-Added-First": stix_time(first),
                   "X-TAXII-Date-Added-Last": stix_time(last)}
    return taxii_response(encode_envelope(more, cursor, texts), headers)


def add_taxii_routes(app: web.Application) -> None:
    app.router.add_get("/taxii2/", discovery, name="taxii_discovery")
    app.router.add_get("/taxii2/api/", api_root, name="taxii_root")
    app.router.add_get("/taxii2/api/collections/", collections, name="taxii_collections")
    app.router.add_get("/taxii2/api/collections/{collection}/", collection,
                       name="taxii_collection")
    app.router.add_get("/taxii2/api/collections/{collection}/objects/", objects,
                       name="taxii_objects")
    app.router.add_get("/taxii2/api/collections/{collection}/manifest/", objects,
                       name="taxii_manifest")
