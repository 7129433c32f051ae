"""The case routes of the local API, against a real aiohttp server on loopback."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hashmesh.node.api.app import create_app
from hashmesh.node.service import NodeService
from tests.conftest import NodeDir

Client = TestClient[Any, Any]


def pdq(seed: int) -> str:
    return random.Random(seed).getrandbits(256).to_bytes(32, "big").hex()


def item(seed: int) -> dict[str, Any]:
    return {"hashes": [{"type": "pdq", "value": pdq(seed)}]}


@pytest.fixture
async def api(node_dir: NodeDir, aiohttp_client: Any) -> Client:
    node_dir.config_path.write_text(node_dir.config_path.read_text()
                                    + "\n[cases]\npin_attempts = 2\nmax_items = 3\n")
    service = await NodeService.open(node_dir.config())
    client: Client = await aiohttp_client(create_app(service, federate=False))
    client.session.headers["Authorization"] = f"Bearer {node_dir.token}"
    return client


async def public(api: Client, path: str, body: object) -> tuple[int, dict[str, Any],
                                                               dict[str, str]]:
    """A request without any token, as a person makes it."""
    async with aiohttp.ClientSession() as session:
        async with session.post(api.make_url(path), json=body) as response:
            return response.status, await response.json(), dict(response.headers)


async def open_case(api: Client, *seeds: int, **extra: Any) -> dict[str, Any]:
    response = await api.post("/v1/cases", json={"items": [item(s) for s in seeds], **extra})
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.json()
    return body


async def test_open_then_status_and_withdraw_without_a_token(api: Client) -> None:
    opened = await open_case(api, 1, 2)
    assert set(opened) == {"reference", "pin", "state", "records"}
    assert opened["state"] == "open" and len(opened["records"]) == 1
    credentials = {"reference": opened["reference"], "pin": opened["pin"]}

    status, body, headers = await public(api, "/v1/cases/status", credentials)
    assert status == 200 and body["state"] == "open" and body["items"] == 2
    assert body["words"][0].startswith("Opened ") and headers["Cache-Control"] == "no-store"
    status, body, _ = await public(api, "/v1/cases/status", {**credentials, "lang": "fr"})
    assert body["words"][0].startswith("Ouvert le ")

    status, body, _ = await public(api, "/v1/cases/withdraw", credentials)
    assert status == 200 and body["state"] == "withdrawn"
    assert body["withdrawal"]["signed"] is True
    match = await api.post("/v1/match", json={"hashes": [{"type": "pdq", "value": pdq(1)}]})
    assert (await match.json())["verdict"] == "none"


async def test_wrong_reference_and_pin_answer_alike_then_lock(api: Client) -> None:
    opened = await open_case(api, 3)
    wrong_pin = "00000000" if opened["pin"] != "00000000" else "11111111"
    by_pin = await public(api, "/v1/cases/status",
                          {"reference": opened["reference"], "pin": wrong_pin})
    by_reference = await public(api, "/v1/cases/status",
                                {"reference": "AAAA-BBBB-CCCC-DDDD", "pin": opened["pin"]})
    assert by_pin[0] == by_reference[0] == 403
    assert by_pin[1] == by_reference[1] == {"error": {
        "code": "CASE_ACCESS_DENIED",
        "message": "this reference and PIN do not open a case; check both and try again"}}
    # pin_attempts = 2: the second wrong PIN locks the reference, whatever comes next
    await public(api, "/v1/cases/withdraw", {"reference": opened["reference"], "pin": wrong_pin})
    status, body, headers = await public(api, "/v1/cases/withdraw",
                                         {"reference": opened["reference"],
                                          "pin": opened["pin"]})
    assert status == 429 and body["error"]["code"] == "CASE_LOCKED"
    assert 890 <= int(headers["Retry-After"]) <= 900


@pytest.mark.parametrize(("body", "field"), [
    ({"reference": "AAAA-BBBB-CCCC-DDDD"}, "pin"),
    ({"pin": "12345678"}, "reference"),
    ({"reference": "AAAA-BBBB-CCCC-DDDD", "pin": 12345678}, "pin"),
    ({"reference": "AAAA-BBBB-CCCC-DDDD", "pin": "12345678", "case": 1}, "case"),
    ({"reference": "AAAA-BBBB-CCCC-DDDD", "pin": "12345678", "lang": "xx"}, "lang"),
    ({"reference": "A" * 65, "pin": "12345678"}, "reference"),
    ([], ""),
])
async def test_bad_credentials_bodies_name_the_field(api: Client, body: object,
                                                     field: str) -> None:
    status, answer, _ = await public(api, "/v1/cases/status", body)
    assert status == 400
    assert answer["error"].get("field", "") == field, answer


async def test_a_large_body_is_refused_before_it_is_read(api: Client) -> None:
    status, answer, _ = await public(api, "/v1/cases/status",
                                     {"reference": "x", "pin": "1" * 10_000})
    assert status == 413 and answer["error"]["code"] == "BODY_TOO_LARGE"


async def test_opening_needs_the_write_scope_and_sane_items(api: Client) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(api.make_url("/v1/cases"), json={"items": [item(1)]}) as r:
            assert r.status == 401
    too_many = await api.post("/v1/cases", json={"items": [item(s) for s in range(4)]})
    assert too_many.status == 400
    assert (await too_many.json())["error"]["field"] == "items"
    bad_review = await api.post("/v1/cases", json={"items": [item(1)], "review": "yes"})
    assert (await bad_review.json())["error"]["field"] == "review"
    bad_hash = await api.post("/v1/cases", json={"items": [
        {"hashes": [{"type": "pdq", "value": "zz"}]}]})
    assert bad_hash.status == 400
    assert (await bad_hash.json())["error"]["field"].startswith("items[0].hashes[0]")
    pending = await (await api.get("/v1/cases/pending")).json()
    assert pending == {"cases": []}  # nothing half-made by the refusals


async def test_the_review_queue(api: Client) -> None:
    held = await open_case(api, 5, 6, review=True)
    assert held["state"] == "pending_review" and held["records"] == []
    [pending] = (await (await api.get("/v1/cases/pending")).json())["cases"]
    assert pending["items"] == 2 and pending["hash_types"] == {"pdq": 2}
    assert pending["opened_by"].startswith("token:") and "reference" not in pending
    approved = await api.post(f"/v1/cases/{pending['case_id']}/approve")
    assert approved.status == 200 and (await approved.json())["state"] == "open"
    again = await api.post(f"/v1/cases/{pending['case_id']}/approve")
    assert again.status == 409 and (await again.json())["error"]["code"] == "CASE_STATE"
    assert (await api.post("/v1/cases/" + "0" * 24 + "/reject")).status == 404
    bad = await api.post("/v1/cases/not-an-id/reject")
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "case_id"

    await open_case(api, 7, review=True)
    [other] = (await (await api.get("/v1/cases/pending")).json())["cases"]
    rejected = await api.post(f"/v1/cases/{other['case_id']}/reject")
    assert await rejected.json() == {"case_id": other["case_id"], "state": "rejected"}
    assert (await (await api.get("/v1/cases/pending")).json())["cases"] == []


async def test_the_review_queue_needs_a_token(api: Client) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(api.make_url("/v1/cases/pending")) as response:
            assert response.status == 401
