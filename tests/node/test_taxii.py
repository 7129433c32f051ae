"""TAXII 2.1, read-only, against a real server, with the real taxii2-client and stix2-validator."""

from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Any

import pytest
import requests
from aiohttp.test_utils import TestClient
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from hashmesh.node.api.app import create_app
from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.api.taxii import TAXII_MEDIA_TYPE, collection_id, object_id
from hashmesh.node.config.node import hash_token
from hashmesh.node.service import NodeService
from hashmesh.protocol.keys import SigningKey
from tests.node.test_api import error_of
from tests.protocol.builders import Chain, feedback_body

Client = TestClient[Any, Any]


class Bearer(requests.auth.AuthBase):
    """The node's bearer token, the way a requests-based TAXII client sends it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def item(i: int, **extra: Any) -> dict[str, Any]:
    rng = random.Random(i)
    return {"hashes": [{"type": "pdq", "value": f"{rng.getrandbits(256):064x}"},
                       {"type": "md5", "value": f"{rng.getrandbits(128):032x}"},
                       {"type": "sha256", "value": f"{rng.getrandbits(256):064x}"}], **extra}


async def bulk_add(api: Client, start: int, count: int) -> list[str]:
    refs = []
    for first in range(start, start + count, 1000):
        response = await api.post("/v1/records", json={"items": [
            item(i, labels=["intimate"]) for i in range(first, min(first + 1000, start + count))]})
        assert response.status == 201, await response.text()
        refs += [ref for record in (await response.json())["records"] for ref in record["items"]]
    return refs


OPTIONS = ValidationOptions(strict=False)


# What differs between two indicators of one shape: ids, times, item refs, hash values.
_VARYING = re.compile(r"indicator--[0-9a-f-]{36}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
                      r"|[0-9a-f]{64}/\d+|\b[0-9a-f]{32,64}\b|ed25519:[A-Za-z0-9_-]{43}")


def all_valid(objects: list[dict[str, Any]]) -> bool:
    """Every object checked by stix2-validator, at the cost of one run per *shape*.

    The validator takes 10-50 ms an object here (its ANTLR pattern parser and JSON schema),
    so 10,000 objects would cost 2-9 minutes of one core. Its verdict depends on the
    structure and on the form of each value, not on which hex digits or which instant: each
    object is reduced to its shape (ids, timestamps, item refs, hash values and origins
    replaced by a fixed value of the same form, each matched by ``_VARYING``'s strict
    patterns), and each distinct shape is validated whole, with a real object of it.
    """
    shapes: dict[str, dict[str, Any]] = {}
    for obj in objects:
        shape = _VARYING.sub(lambda m: _placeholder(m.group(0)), json.dumps(obj, sort_keys=True))
        shapes.setdefault(shape, obj)
    assert len(shapes) <= 8, f"{len(shapes)} shapes: the placeholders miss a varying field"
    return all(valid(obj) for obj in shapes.values())


def _placeholder(value: str) -> str:
    if value.startswith("indicator--"):
        return "indicator--<uuid>"
    if value.startswith("ed25519:"):
        return "<origin>"
    if value[:4].isdigit() and "T" in value:
        return "<time>"
    if "/" in value:
        return "<ref>"
    return f"<hex{len(value)}>"


def valid(obj: dict[str, Any]) -> bool:
    """stix2-validator's verdict (errors fail; best-practice warnings such as "ids SHOULD be
    uuid4" do not: ids are uuid5 on purpose, so versions line up on every node)."""
    result = validate_instance(obj, OPTIONS)
    assert result.is_valid, [str(e) for e in result.errors]
    return True


@pytest.mark.slow
async def test_taxii2_client_pages_resumes_and_sees_a_revocation(api: Client, node_dir: Any
                                                                 ) -> None:
    refs = await bulk_add(api, 0, 10_000)
    base = str(api.make_url("/taxii2/"))
    auth = Bearer(node_dir.token)

    def first_fetch() -> tuple[list[dict[str, Any]], int]:
        server = Server(base, auth=auth)
        [root] = server.api_roots
        assert isinstance(root, ApiRoot) and root.versions == [TAXII_MEDIA_TYPE]
        [collection] = root.collections
        assert collection.title == "ncii" and collection.can_read and not collection.can_write
        seen: list[dict[str, Any]] = []
        pages = 0
        for envelope in as_pages(collection.get_objects, per_request=1000):
            pages += 1
            seen += envelope.get("objects", [])
            if envelope.get("more"):
                assert envelope["next"]  # always a next when more is true
        return seen, pages

    seen, pages = await asyncio.to_thread(first_fetch)
    # as_pages hands over bodies, not headers: a version's modified is its date_added, so
    # the last object's is where X-TAXII-Date-Added-Last would resume
    last = seen[-1]["modified"]
    assert pages == 10
    assert [o["x_hashmesh_item"] for o in seen] == refs
    assert len({o["id"] for o in seen}) == 10_000
    assert all_valid(seen)
    first = seen[0]
    assert first["id"] == object_id(refs[0])
    assert "file:hashes.MD5 = '" in first["pattern"]
    assert "file:hashes.'SHA-256' = '" in first["pattern"]
    assert "file:hashes.x_pdq = '" in first["pattern"]
    assert first["x_hashmesh_thresholds"] == {"pdq": 31}

    response = await api.post("/v1/revocations", json={"targets": [refs[7]],
                                                       "reason": "withdrawn"})
    assert response.status == 201
    added = await bulk_add(api, 20_000, 3)

    def resume() -> list[dict[str, Any]]:
        collection = Collection(
            f"{base}api/collections/{collection_id('ncii')}/", auth=auth)
        return [o for envelope in as_pages(collection.get_objects, per_request=1000,
                                           added_after=last)
                for o in envelope.get("objects", [])]

    later = await asyncio.to_thread(resume)
    assert [o["x_hashmesh_item"] for o in later] == [refs[7], *added]
    withdrawn = later[0]
    assert withdrawn["revoked"] is True and withdrawn["id"] == seen[7]["id"]
    assert withdrawn["created"] == seen[7]["created"]
    assert withdrawn["modified"] > seen[7]["modified"]
    assert all(valid(o) for o in later)


async def test_pages_headers_and_versions(api: Client) -> None:
    refs = await bulk_add(api, 0, 5)
    response = await api.post("/v1/revocations", json={"targets": [refs[1]],
                                                       "reason": "withdrawn"})
    assert response.status == 201
    url = f"/taxii2/api/collections/{collection_id('ncii')}/objects/"
    headers = {"Accept": TAXII_MEDIA_TYPE}
    response = await api.get(url, params={"limit": "2"}, headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == TAXII_MEDIA_TYPE
    body = await response.json()
    assert body["more"] is True and body["next"] and len(body["objects"]) == 2
    assert response.headers["X-TAXII-Date-Added-First"] < response.headers[
        "X-TAXII-Date-Added-Last"]
    # the default is the last version: the revoked item appears once, revoked, at the end
    every = []
    cursor = None
    while True:
        params = {"limit": "2", **({"next": cursor} if cursor else {})}
        body = await (await api.get(url, params=params, headers=headers)).json()
        every += body.get("objects", [])
        if not body["more"]:
            break
        cursor = body["next"]
    assert [(o["x_hashmesh_item"], o.get("revoked", False)) for o in every] == [
        (refs[0], False), (refs[2], False), (refs[3], False), (refs[4], False), (refs[1], True)]
    body = await (await api.get(url, params={"match[version]": "all"}, headers=headers)).json()
    assert [o["x_hashmesh_item"] for o in body["objects"]] == [*refs, refs[1]]
    assert all(valid(o) for o in body["objects"])
    manifest = await (await api.get(url.replace("/objects/", "/manifest/"),
                                    headers=headers)).json()
    assert [m["id"] for m in manifest["objects"]] == [o["id"] for o in every]
    other = await (await api.get(url, params={"match[type]": "malware"},
                                 headers=headers)).json()
    assert other == {"more": False}


def test_object_ids_are_uuid5_of_the_item_ref() -> None:
    import uuid

    from hashmesh.node.api.taxii import NAMESPACE, stix_time

    for ref in ("a" * 64 + "/0", "b" * 64 + "/255"):
        assert object_id(ref) == f"indicator--{uuid.uuid5(NAMESPACE, 'item:' + ref)}"
    assert stix_time(1_700_000_000_000_001) == "2023-11-14T22:13:20.000001Z"


async def test_bad_taxii_parameters_are_refused_by_field(api: Client) -> None:
    url = f"/taxii2/api/collections/{collection_id('ncii')}/objects/"
    for params, code, field in [
            ({"added_after": "yesterday"}, "BAD_FILTER", "added_after"),
            ({"added_after": "2026-02-30T00:00:00Z"}, "BAD_FILTER", "added_after"),
            ({"limit": "0"}, "BAD_LIMIT", "limit"),
            ({"limit": "x"}, "BAD_LIMIT", "limit"),
            ({"next": "abc"}, "BAD_CURSOR", "next"),
            ({"next": "123456"}, "BAD_CURSOR", "next"),
            ({"match[version]": "first"}, "BAD_FILTER", "match[version]"),
            ({"match[id]": "indicator--x"}, "UNKNOWN_FIELD", "match[id]")]:
        response = await api.get(url, params=params)
        assert response.status == 400, params
        error = await error_of(response)
        assert (error["code"], error["field"]) == (code, field)
    response = await api.get("/taxii2/api/collections/nope/objects/")
    assert response.status == 404
    response = await api.get("/taxii2/", headers={"Accept": "text/html"})
    assert response.status == 406


async def test_taxii_needs_a_token_with_the_read_scope(make_node_dir: Any,
                                                       aiohttp_client: Any) -> None:
    node_dir = make_node_dir()
    node_dir.config_path.write_text(
        node_dir.config_path.read_text()
        + f'[[api.tokens]]\nname = "prometheus"\nsha256 = "{hash_token("scrape")}"\n'
        'scopes = ["metrics"]\n')
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    for path in ("/taxii2/", "/taxii2/api/", "/taxii2/api/collections/",
                 f"/taxii2/api/collections/{collection_id('ncii')}/objects/"):
        assert (await client.get(path)).status == 401
        response = await client.get(path, headers={"Authorization": "Bearer scrape"})
        assert response.status == 403


async def test_an_expiry_is_a_revoked_version_after_valid_until(api: Client) -> None:
    from hashmesh.node.api.routes import SERVICE_KEY
    from hashmesh.node.store.sqlite import now_ms

    soon = now_ms() + 60_000
    response = await api.post("/v1/records", json={"items": [item(1, expires=soon)]})
    assert response.status == 201
    await api.app[SERVICE_KEY].sweep_expired(now=soon)
    url = f"/taxii2/api/collections/{collection_id('ncii')}/objects/"
    body = await (await api.get(url, params={"match[version]": "all"})).json()
    first, expired = body["objects"]
    assert first["id"] == expired["id"] and "revoked" not in first
    assert first["valid_until"] == expired["valid_until"]
    assert expired["revoked"] is True and expired["modified"] > first["modified"]
    assert all(valid(o) for o in body["objects"])


async def test_a_quarantined_item_is_a_revoked_version(api: Client) -> None:
    """Issue 11's quarantine (``not_ncii`` from two origins) reaches TAXII consumers as a
    revocation, at the verdict that started it; the last version of the item is revoked."""
    service: NodeService = api.app[SERVICE_KEY]
    refs = await bulk_add(api, 0, 3)
    for n in (7, 8):
        record = Chain(SigningKey(bytes([n] * 32))).add(feedback_body(refs[1], "not_ncii"))
        await service.store.write(lambda s, r=record: s.ingest([r], source="peer"))
    url = f"/taxii2/api/collections/{collection_id('ncii')}/objects/"
    headers = {"Accept": TAXII_MEDIA_TYPE}
    last = (await (await api.get(url, headers=headers)).json())["objects"]
    assert [(o["x_hashmesh_item"], o.get("revoked", False)) for o in last] == [
        (refs[0], False), (refs[2], False), (refs[1], True)]
    every = (await (await api.get(url, params={"match[version]": "all"},
                                  headers=headers)).json())["objects"]
    assert [(o["x_hashmesh_item"], o.get("revoked", False)) for o in every] == [
        (refs[0], False), (refs[1], False), (refs[2], False), (refs[1], True)]
    assert every[3]["id"] == every[1]["id"] and every[3]["modified"] > every[1]["modified"]
    assert all(valid(o) for o in every)
