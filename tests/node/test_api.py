"""The local HTTP API against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from hashmesh.node.api.app import create_app
from hashmesh.node.api.openapi import openapi_document
from hashmesh.node.api.routes import MATCHING_KEY, SERVICE_KEY
from hashmesh.node.cli.bulk import encode_request, item_affixes
from hashmesh.node.cli.hashlists import ListEntry
from hashmesh.node.config.node import hash_token
from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import now_ms
from tests.conftest import NodeDir

Client = TestClient[Any, Any]


def pdq(seed: int) -> str:
    return random.Random(seed).getrandbits(256).to_bytes(32, "big").hex()


def flip_bits(value: str, count: int) -> str:
    number = int(value, 16)
    for bit in range(count):
        number ^= 1 << (bit * 7)
    return f"{number:064x}"


async def add(api: Client, *hashes: dict[str, Any], **item: Any) -> dict[str, Any]:
    response = await api.post("/v1/records", json={"items": [{"hashes": list(hashes), **item}]})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def match(api: Client, *hashes: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    response = await api.post("/v1/match", json={"hashes": list(hashes), **extra})
    assert response.status == 200, await response.text()
    results: list[dict[str, Any]] = (await response.json())["results"]
    return results


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "field"}
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


async def test_added_hash_matches_with_full_provenance(api: Client, node_dir: NodeDir) -> None:
    value = pdq(1)
    added = await add(api, {"type": "pdq", "value": value, "quality": 90},
                      labels=["intimate"], tier="helpline_verified")
    record = added["records"][0]
    # seq 1 is init's key record authorising the signing key
    assert record["seq"] == 2 and record["items"] == [f"{record['id']}/0"]

    [result] = await match(api, {"type": "pdq", "value": flip_bits(value, 5)})
    [found] = result["matches"]
    assert found == {
        "record": record["id"], "item": f"{record['id']}/0", "origin": node_dir.origin,
        "origin_name": "Test Commission",
        "origin_profile": {"name": "Test Commission", "self_declared": False},
        "list": "ncii", "labels": ["intimate"],
        "tier": "helpline_verified", "hash": {"type": "pdq", "value": value, "quality": 90},
        "distance": 5, "threshold": 31, "expires": None, "feedback": {},
        "verdict": "match",
    }


async def test_hash_beyond_threshold_does_not_match_unless_threshold_raised(api: Client) -> None:
    value = pdq(2)
    await add(api, {"type": "pdq", "value": value})
    far = flip_bits(value, 35)
    [result] = await match(api, {"type": "pdq", "value": far})
    assert result["matches"] == [] and result["threshold"] == 31
    [result] = await match(api, {"type": "pdq", "value": far}, thresholds={"pdq": 40})
    assert [m["distance"] for m in result["matches"]] == [35]


async def test_threshold_above_safe_maximum_is_refused(api: Client) -> None:
    response = await api.post("/v1/match", json={"hashes": [{"type": "pdq", "value": pdq(3)}],
                                                 "thresholds": {"pdq": 200}})
    assert response.status == 400
    error = await error_of(response)
    assert error["field"] == "thresholds.pdq"


async def test_revoked_hash_stops_matching_at_once(api: Client) -> None:
    value = pdq(4)
    added = await add(api, {"type": "pdq", "value": value}, {"type": "md5", "value": "a" * 32})
    record_id = added["records"][0]["id"]
    response = await api.post("/v1/revocations",
                              json={"targets": [record_id], "reason": "withdrawn"})
    assert response.status == 201
    assert (await response.json())["seq"] == 3  # after init's key record and the add
    results = await match(api, {"type": "pdq", "value": value}, {"type": "md5", "value": "a" * 32})
    assert [r["matches"] for r in results] == [[], []]


async def test_revoking_one_item_leaves_the_others_matching(api: Client) -> None:
    first, second = pdq(5), pdq(6)
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": first}]},
        {"hashes": [{"type": "pdq", "value": second}]}]})
    record_id = (await response.json())["records"][0]["id"]
    response = await api.post("/v1/revocations",
                              json={"targets": [f"{record_id}/0"], "reason": "erroneous"})
    assert response.status == 201
    results = await match(api, {"type": "pdq", "value": first}, {"type": "pdq", "value": second})
    assert [len(r["matches"]) for r in results] == [0, 1]


async def test_feedback_counts_appear_in_match_answers(api: Client) -> None:
    value = pdq(7)
    record_id = (await add(api, {"type": "pdq", "value": value}))["records"][0]["id"]
    response = await api.post("/v1/feedback", json={"target": record_id, "verdict": "confirmed",
                                                    "note": "seen on our platform"})
    assert response.status == 201
    [result] = await match(api, {"type": "pdq", "value": value})
    assert result["matches"][0]["feedback"] == {"confirmed": 1}


async def test_feedback_carries_its_targets_distribution(api: Client) -> None:
    """Feedback on a group-scoped record goes only where that record's body may go (SPEC
    §9.2): a non-member gets its stub, not the note."""
    group = {"scope": "group", "group": "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f",
             "jurisdictions": ["IE"]}
    response = await api.post("/v1/records", json={
        "items": [{"hashes": [{"type": "pdq", "value": pdq(9)}]}], "dist": group})
    record_id = (await response.json())["records"][0]["id"]
    response = await api.post("/v1/feedback", json={"target": record_id, "verdict": "disputed",
                                                    "note": "free text"})
    assert response.status == 201
    feedback_id = (await response.json())["id"]
    record = await (await api.get(f"/v1/records/{feedback_id}")).json()
    assert record["record"]["head"]["dist"] == group


async def test_list_filter_limits_matches(api: Client) -> None:
    value = pdq(8)
    await add(api, {"type": "pdq", "value": value})
    [result] = await match(api, {"type": "pdq", "value": value}, lists=["other"])
    assert result["matches"] == []
    [result] = await match(api, {"type": "pdq", "value": value}, lists=["ncii"])
    assert len(result["matches"]) == 1


async def test_expired_item_never_matches(api: Client) -> None:
    value = pdq(9)
    await add(api, {"type": "pdq", "value": value}, expires=1)
    [result] = await match(api, {"type": "pdq", "value": value})
    assert result["matches"] == []


async def test_an_item_expired_on_arrival_never_enters_the_index(api: Client) -> None:
    service = api.app[SERVICE_KEY]
    await add(api, {"type": "pdq", "value": pdq(11)}, expires=1)
    assert service.matcher.count("pdq") == 0


async def test_each_sweep_removes_what_expired_since_the_one_before(api: Client) -> None:
    service = api.app[SERVICE_KEY]
    soon = now_ms() + 60_000
    await add(api, {"type": "pdq", "value": pdq(12)}, expires=soon)
    await add(api, {"type": "pdq", "value": pdq(13)}, expires=soon + 1_000)
    assert service.matcher.count("pdq") == 2
    assert await service.sweep_expired(now=soon - 1) == 0
    assert await service.sweep_expired(now=soon) == 1
    assert service.matcher.count("pdq") == 1
    assert await service.sweep_expired(now=soon + 500) == 0  # not reported twice
    assert await service.sweep_expired(now=soon + 1_000) == 1
    assert service.matcher.count("pdq") == 0


async def test_uppercase_hash_values_are_normalised(api: Client) -> None:
    value = pdq(10)
    await add(api, {"type": "pdq", "value": value.upper()})
    [result] = await match(api, "pdq:" + value.upper())
    assert result["matches"][0]["hash"]["value"] == value


async def test_record_is_served_with_its_hash_states(api: Client) -> None:
    record_id = (await add(api, {"type": "sha256", "value": "b" * 64}))["records"][0]["id"]
    response = await api.get(f"/v1/records/{record_id}")
    assert response.status == 200
    body = await response.json()
    assert body["id"] == record_id
    assert body["record"]["head"]["seq"] == 2  # after init's key record
    assert body["hashes"] == [{"item": f"{record_id}/0", "type": "sha256", "value": "b" * 64,
                               "active": True}]


async def test_status_reports_counts_and_origin(api: Client, node_dir: NodeDir) -> None:
    await add(api, {"type": "pdq", "value": pdq(11)})
    response = await api.get("/v1/status")
    body = await response.json()
    assert body["origin"] == node_dir.origin
    # init's key record and the add
    assert body["counts"]["records"] == 2 and body["counts"]["hashes_active"] == 1
    assert body["index"] == {"pdq": 1}


async def test_health_needs_no_token_and_metrics_need_the_metrics_scope(api: Client) -> None:
    await add(api, {"type": "pdq", "value": pdq(12)})
    response = await api.get("/metrics")
    text = await response.text()
    assert 'hashmesh_hashes_active{hash_type="pdq"} 1.0' in text
    assert "hashmesh_records_signed_total" in text
    del api.session.headers["Authorization"]
    assert (await api.get("/healthz")).status == 200
    response = await api.get("/metrics")
    assert response.status == 401
    assert (await response.json())["error"]["field"] == "Authorization"


async def test_a_read_token_cannot_scrape_metrics_and_a_metrics_token_cannot_match(
        make_node_dir: Any, aiohttp_client: Any) -> None:
    node_dir = make_node_dir()
    text = node_dir.config_path.read_text().replace(
        'scopes = ["read", "write", "metrics", "audit"]', 'scopes = ["read"]')
    text += (f'[[api.tokens]]\nname = "prometheus"\nsha256 = "{hash_token("scrape")}"\n'
             'scopes = ["metrics"]\n')
    node_dir.config_path.write_text(text)
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    reader = {"Authorization": f"Bearer {node_dir.token}"}
    scraper = {"Authorization": "Bearer scrape"}
    response = await client.get("/metrics", headers=reader)
    assert response.status == 403 and "metrics" in (await response.json())["error"]["message"]
    assert (await client.get("/metrics", headers=scraper)).status == 200
    response = await client.post("/v1/match", headers=scraper,
                                 json={"hashes": [{"type": "pdq", "value": pdq(1)}]})
    assert response.status == 403


async def test_public_metrics_need_no_token(make_node_dir: Any, aiohttp_client: Any) -> None:
    node_dir = make_node_dir()
    node_dir.config_path.write_text(node_dir.config_path.read_text().replace(
        "[[api.tokens]]", "public_metrics = true\n[[api.tokens]]", 1))
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    assert (await client.get("/metrics")).status == 200
    assert (await client.post("/v1/match", json={"hashes": []})).status == 401


async def test_match_image_hashes_in_memory_and_matches_a_resized_copy(
        api: Client, photo: Path) -> None:
    original = photo.read_bytes()
    response = await api.post("/v1/match/image", data=original)
    assert response.status == 200
    hashes = (await response.json())["hashes"]
    pdq_hash = next(h for h in hashes if h["type"] == "pdq")
    await add(api, {"type": "pdq", "value": pdq_hash["value"]})

    image = Image.open(io.BytesIO(original)).convert("RGB")
    image = image.resize((image.width // 2, image.height // 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=75)
    response = await api.post("/v1/match/image", data=buffer.getvalue())
    results = (await response.json())["results"]
    pdq_result = next(r for r in results if r["query"]["type"] == "pdq")
    assert len(pdq_result["matches"]) == 1
    assert pdq_result["matches"][0]["distance"] <= 31


@pytest.fixture
def photo() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / "astronaut.png"


# -- every bad input is refused with a clear 4xx and a located message -----------------------

async def test_error_shape_is_pinned(api: Client) -> None:
    response = await api.post("/v1/match", json={"hashes": [{"type": "pdq", "value": "abc"}]})
    assert response.status == 400
    assert await response.json() == {"error": {
        "code": "BAD_HASH_VALUE",
        "field": "hashes[0].value",
        "message": "hashes[0].value: invalid pdq hash (expected 64 hex characters, got 3)",
    }}


async def test_wrong_token_is_refused(api: Client) -> None:
    response = await api.post("/v1/match", json={"hashes": ["pdq:" + pdq(1)]},
                              headers={"Authorization": "Bearer not-the-token"})
    assert response.status == 401
    assert (await error_of(response))["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_missing_token_is_refused(api: Client) -> None:
    del api.session.headers["Authorization"]
    response = await api.get("/v1/status")
    assert response.status == 401
    assert (await error_of(response))["field"] == "Authorization"


async def test_malformed_json_is_refused(api: Client) -> None:
    response = await api.post("/v1/records", data=b'{"items": [',
                              headers={"Content-Type": "application/json"})
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "MALFORMED_JSON" and "line 1" in error["message"]


async def test_unknown_hash_type_is_refused_by_name(api: Client) -> None:
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "sha1", "value": "a" * 40}]}]})
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "UNKNOWN_HASH_TYPE"
    assert error["field"] == "items[0].hashes[0].type" and "'sha1'" in error["message"]


async def test_bad_hash_value_is_refused_with_its_location(api: Client) -> None:
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(1)}]},
        {"hashes": [{"type": "pdq", "value": "z" * 64}]}]})
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "BAD_HASH_VALUE" and error["field"] == "items[1].hashes[0].value"


async def test_unknown_field_is_refused(api: Client) -> None:
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(1)}], "colour": "red"}]})
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "UNKNOWN_FIELD" and error["field"] == "items[0].colour"


async def test_list_not_configured_is_refused(api: Client) -> None:
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(1)}], "list": "elsewhere"}]})
    assert response.status == 400
    assert (await error_of(response))["field"] == "items[0].list"


async def test_oversize_body_is_refused(api: Client) -> None:
    response = await api.post("/v1/match", data=io.BytesIO(b"x" * (1_048_576 + 10)),
                              headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await error_of(response))["code"] == "BODY_TOO_LARGE"


async def test_add_requests_take_max_add_items_beyond_max_batch(
        make_node_dir: Any, aiohttp_client: Any) -> None:
    """``[limits] max_add_items`` bounds an add request, not ``max_batch`` (match requests):
    a bulk add of 2,500 items in one request is signed whole, in one transaction; one item
    more than the limit is refused, naming ``items``, on the fast path's body as on any."""
    node_dir = make_node_dir()
    node_dir.config_path.write_text(node_dir.config_path.read_text()
                                    + "\n[limits]\nmax_add_items = 2500\n")
    service = await NodeService.open(node_dir.config())
    api: Client = await aiohttp_client(create_app(service))
    api.session.headers["Authorization"] = f"Bearer {node_dir.token}"
    prefix, suffix = item_affixes({"tier": "victim_submitted"}, "ncii")
    entries = [ListEntry("pdq", pdq(i), "") for i in range(2501)]
    dist = {"scope": "all"}
    status = await (await api.get("/v1/status")).json()
    assert status["limits"]["max_add_items"] == 2500 and status["limits"]["max_batch"] == 1000
    too_many = await api.post("/v1/records", data=encode_request(entries, prefix, suffix, dist),
                              headers={"Content-Type": "application/json"})
    refused = await error_of(too_many)
    assert too_many.status == 400 and refused["field"] == "items"
    assert refused["message"] == ("items: at most 2500 entries allowed, got 2501 (this node's "
                                  "[limits] max_add_items): send them in several requests")
    added = await api.post("/v1/records", data=encode_request(entries[:2500], prefix, suffix,
                                                              dist),
                           headers={"Content-Type": "application/json"})
    assert added.status == 201
    records = (await added.json())["records"]
    assert [len(r["items"]) for r in records] == [256] * 9 + [196]
    assert records[-1]["items"][-1] == records[-1]["id"] + "/195"
    assert service.matcher.count("pdq") == 2500
    match = await api.post("/v1/match", json={"hashes": [f"pdq:{pdq(2499)}"]})
    [hit] = (await match.json())["results"][0]["matches"]
    assert hit["distance"] == 0 and hit["item"] == records[-1]["items"][-1]


async def test_batch_over_the_cap_is_refused(api: Client) -> None:
    hashes = [f"md5:{i:032x}" for i in range(1001)]
    response = await api.post("/v1/match", json={"hashes": hashes})
    assert response.status == 400
    assert (await error_of(response))["field"] == "hashes"


async def test_non_image_upload_is_refused(api: Client) -> None:
    response = await api.post("/v1/match/image", data=b"%PDF-1.4 definitely not an image")
    assert response.status == 422
    assert (await error_of(response))["code"] == "BAD_IMAGE"


async def test_truncated_jpeg_is_refused(api: Client, photo: Path) -> None:
    buffer = io.BytesIO()
    Image.open(photo).convert("RGB").save(buffer, "JPEG", quality=90)
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    response = await api.post("/v1/match/image", data=truncated)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "BAD_IMAGE" and "truncated" in error["message"].lower()


async def test_revoking_an_unknown_record_is_not_found(api: Client) -> None:
    response = await api.post("/v1/revocations", json={"targets": ["c" * 64],
                                                       "reason": "withdrawn"})
    assert response.status == 404
    assert (await error_of(response))["field"] == "targets[0]"


async def test_unknown_record_id_is_not_found(api: Client) -> None:
    response = await api.get("/v1/records/" + "d" * 64)
    assert response.status == 404
    response = await api.get("/v1/records/not-an-id")
    assert response.status == 400


async def test_unknown_route_uses_the_error_shape(api: Client) -> None:
    response = await api.get("/v1/nothing-here")
    assert response.status == 404
    assert (await error_of(response))["code"] == "NOT_FOUND"


async def test_read_only_token_cannot_write(node_dir: NodeDir, aiohttp_client: Any) -> None:
    from hashmesh.node.config.node import hash_token

    text = node_dir.config_path.read_text().replace(
        'scopes = ["read", "write", "metrics", "audit"]', 'scopes = ["read"]')
    node_dir.config_path.write_text(text)
    assert 'scopes = ["read"]' in text
    service = await NodeService.open(node_dir.config())
    assert service.config.find_token(node_dir.token) is not None
    assert hash_token(node_dir.token) in text
    client = await aiohttp_client(create_app(service))
    headers = {"Authorization": f"Bearer {node_dir.token}"}
    response = await client.post("/v1/records", headers=headers, json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(1)}]}]})
    assert response.status == 403
    assert (await client.get("/v1/status", headers=headers)).status == 200


async def test_openapi_document_lists_exactly_the_served_routes(api: Client) -> None:
    served = {(route.method.lower(), route.resource.canonical)
              for route in api.app.router.routes()
              if route.method != "HEAD" and route.resource is not None}
    document = await (await api.get("/v1/openapi.json")).json()
    assert document == openapi_document(api.app[MATCHING_KEY].config.limits)
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == served


async def test_large_photodna_batch_is_split_to_fit_the_record_limit(api: Client) -> None:
    import base64

    items = [{"hashes": [{"type": "photodna",
                          "value": base64.b64encode(bytes([i % 256]) * 1000).decode()}]}
             for i in range(200)]
    response = await api.post("/v1/records", json={"items": items})
    assert response.status == 201, await response.text()
    records = (await response.json())["records"]
    assert len(records) > 1
    assert sum(len(r["items"]) for r in records) == 200


async def test_items_of_different_lists_go_in_separate_records(
        node_dir: NodeDir, aiohttp_client: Any) -> None:
    text = node_dir.config_path.read_text().replace('allowed = ["ncii"]',
                                                    'allowed = ["ncii", "research"]')
    node_dir.config_path.write_text(text)
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config()),
                                             federate=False))
    response = await client.post("/v1/records", headers={
        "Authorization": f"Bearer {node_dir.token}"}, json={"items": [
            {"hashes": [{"type": "pdq", "value": pdq(1)}], "list": "ncii"},
            {"hashes": [{"type": "pdq", "value": pdq(2)}], "list": "research"},
            {"hashes": [{"type": "pdq", "value": pdq(3)}], "list": "ncii"}]})
    assert response.status == 201, await response.text()
    records = (await response.json())["records"]
    assert [len(r["items"]) for r in records] == [2, 1]


async def test_openapi_document_says_what_the_node_does(api: Client) -> None:
    """Issue 18, item 8: each of these differed from behaviour."""
    document = await (await api.get("/v1/openapi.json")).json()
    limits = api.app[MATCHING_KEY].config.limits
    paths, schemas = document["paths"], document["components"]["schemas"]

    def body(path: str) -> dict[str, Any]:
        schema: dict[str, Any] = paths[path]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        return schema

    match_hashes = body("/v1/match")["properties"]["hashes"]
    assert match_hashes["maxItems"] == limits.max_batch
    assert match_hashes["items"]["oneOf"][0] == {"$ref": "#/components/schemas/HashQuery"}
    assert "quality" not in schemas["HashQuery"]["properties"]
    refused = await api.post("/v1/match", json={"hashes": [
        {"type": "pdq", "value": pdq(1), "quality": 100}]})
    assert refused.status == 400 and (await error_of(refused))["field"] == "hashes[0].quality"
    assert body("/v1/records")["properties"]["items"]["maxItems"] == limits.max_add_items
    assert body("/v1/revocations")["properties"]["targets"]["maxItems"] == min(
        limits.max_batch, 256)
    log_parameters = {p["name"]: p["schema"] for p in paths["/v1/log/{origin}"]["get"][
        "parameters"]}
    assert log_parameters["limit"]["maximum"] == 2**53 - 1
    assert {"400", "401", "421", "503"} <= set(paths["/v1/log/{origin}"]["get"]["responses"])
    for path in ("/v1/records", "/v1/revocations", "/v1/feedback"):
        assert {"409", "503"} <= set(paths[path]["post"]["responses"])

    service = api.app[SERVICE_KEY]
    await service.store.write(lambda s: s.block_signing("restored from a backup"))
    blocked = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(2)}]}]})
    assert blocked.status == 409 and (await error_of(blocked))["code"] == "ORIGIN_FROZEN"


async def test_a_bulk_load_left_in_the_index_delta_is_merged_once_it_stops(api: Client) -> None:
    """Requests of 1000 items are a bulk load for the index (``HammingIndex.add_many``): the
    delta may outgrow ``merge_at`` while they arrive, and the node's ``index-settle`` task
    merges it once they stop, so queries no longer scan it."""
    service = api.app[SERVICE_KEY]
    index = service.matcher._indexes["pdq"]
    values = [pdq(10_000 + i) for i in range(7000)]
    for start in range(0, len(values), 1000):
        response = await api.post("/v1/records", json={"items": [
            {"hashes": [{"type": "pdq", "value": v}]} for v in values[start:start + 1000]]})
        assert response.status == 201, await response.text()
    assert index.merge_at() < 2000 < index.bulk_merge_at()
    for _ in range(100):
        snap = index._snap
        if snap.main is not None and snap.main.n == snap.n_rows:
            break
        await asyncio.sleep(0.05)
    assert snap.main is not None and snap.main.n == snap.n_rows == 7000
    assert not service.matcher.unsettled()
    assert (await match(api, {"type": "pdq", "value": values[-1]}))[0]["matches"]
