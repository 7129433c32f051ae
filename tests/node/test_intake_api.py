"""The intake listener's routes against a real service on loopback: CSRF, JSON only, bad
input refused with its field named and nothing left behind, rate limits per address, and the
language choice. The browser side is in ``test_intake_page.py``."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hashmesh.node.api.intake import CSRF_COOKIE, create_intake_app
from hashmesh.node.api.intake_text import TEXT, choose_language
from hashmesh.node.config.intake import IntakeConfig
from hashmesh.node.service import NodeService
from tests.conftest import NodeDir

PDQ = "f" * 32 + "0" * 32


def item(seed: str, pdq: bool = True) -> dict[str, Any]:
    hashes: list[dict[str, Any]] = [
        {"type": "md5", "value": hashlib.md5(seed.encode()).hexdigest()},
        {"type": "sha256", "value": hashlib.sha256(seed.encode()).hexdigest()}]
    if pdq:
        hashes.insert(0, {"type": "pdq", "value": PDQ, "quality": 90})
    return {"hashes": hashes}


@pytest.fixture
def open_intake(node_dir: NodeDir, aiohttp_client: Any
                ) -> Callable[..., Any]:
    services: list[NodeService] = []

    async def start(**settings: Any) -> tuple[TestClient[Any, Any], NodeService]:
        intake = IntakeConfig(enabled=True, **settings)
        config = dataclasses.replace(node_dir.config(), intake=intake)
        service = await NodeService.open(config)
        services.append(service)
        client: TestClient[Any, Any] = await aiohttp_client(create_intake_app(service))
        return client, service

    return start


@pytest.fixture
async def intake(open_intake: Callable[..., Any]
                 ) -> AsyncIterator[tuple[TestClient[Any, Any], NodeService, str]]:
    client, service = await open_intake(requests_per_minute=1000, cases_per_hour=1000,
                                        max_hashes_per_case=9)
    csrf = await page_token(client)
    yield client, service, csrf
    await service.close()


async def page_token(client: TestClient[Any, Any], path: str = "/") -> str:
    response = await client.get(path)
    assert response.status == 200
    match = re.search(r'<meta name="csrf" content="([^"]+)">', await response.text())
    assert match
    return match.group(1)


async def post(client: TestClient[Any, Any], csrf: str, path: str, body: Any
               ) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


async def test_page_sets_only_the_csrf_cookie_and_a_strict_csp(
        intake: tuple[TestClient[Any, Any], NodeService, str]) -> None:
    client, _, _ = intake
    for path in ("/", "/status", "/withdraw"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self';")
        assert [c.key for c in response.cookies.values()] == [CSRF_COOKIE]
        cookie = response.cookies[CSRF_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await client.get("/static/anything.js")).status == 404
    assert (await client.get("/static/pdq.js")).headers["Content-Type"].startswith(
        "text/javascript")


async def test_a_post_without_the_pages_csrf_token_or_not_json_is_refused(
        intake: tuple[TestClient[Any, Any], NodeService, str]) -> None:
    client, service, csrf = intake
    status, answer = await post(client, "wrong", "/api/cases", {"items": [item("a")]})
    assert status == 403 and answer["error"]["code"] == "CSRF"
    response = await client.post("/api/cases", data=b"items=1",
                                 headers={"X-CSRF-Token": csrf,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 415
    assert await service.pending_cases() == []


@pytest.mark.parametrize(("body", "field"), [
    ({}, "items"),
    ({"items": []}, "items"),
    ({"items": [item("a")], "name": "holiday.jpg"}, "name"),
    ({"items": [{"hashes": item("a")["hashes"], "labels": ["x"]}]}, "items[0].labels"),
    ({"items": [item("a"), {"hashes": [{"type": "md5", "value": "zz"}]}]},
     "items[1].hashes[0].value"),
    ({"items": [{"hashes": [{"type": "phash", "value": "0" * 16}]}]}, "items[0].hashes[0].type"),
    ({"items": [item("a", pdq=False) | {"hashes": item("a", pdq=False)["hashes"][:1]}]},
     "items[0].hashes"),
    ({"items": [item("a"), item("b"), item("c"), item("d")]}, "items"),  # 12 hashes > 9
])
async def test_bad_input_names_its_field_and_leaves_nothing_behind(
        intake: tuple[TestClient[Any, Any], NodeService, str], body: Any, field: str) -> None:
    client, service, csrf = intake
    before = await service.store.read(lambda s: s.counts())
    status, answer = await post(client, csrf, "/api/cases", body)
    assert status == 400, answer
    assert answer["error"]["field"] == field
    assert await service.pending_cases() == []
    assert await service.store.read(lambda s: s.counts()) == before


async def test_a_case_opens_for_review_and_is_shown_and_withdrawn_with_reference_and_pin(
        intake: tuple[TestClient[Any, Any], NodeService, str]) -> None:
    client, service, csrf = intake
    before = await service.store.read(lambda s: s.counts())
    status, opened = await post(client, csrf, "/api/cases",
                                {"items": [item("a"), item("v", pdq=False)]})
    assert status == 200, opened
    assert opened["state"] == "pending_review"
    assert opened["reference"] and opened["pin"]
    assert len(await service.pending_cases()) == 1
    # review: nothing signed or shared yet
    assert await service.store.read(lambda s: s.counts()) == before
    ask = {"reference": opened["reference"], "pin": opened["pin"], "lang": "es"}
    status, shown = await post(client, csrf, "/api/status", ask)
    assert status == 200 and shown["status"]["state"] == "pending_review"
    assert isinstance(shown["words"], list) and shown["words"]
    status, wrong = await post(client, csrf, "/api/status", ask | {"pin": "0"})
    assert status == 404 and wrong["error"]["code"] == "NO_CASE"
    status, gone = await post(client, csrf, "/api/withdraw", ask)
    assert status == 200 and gone["status"]["state"] == "withdrawn"


async def test_requests_and_cases_are_limited_per_address(
        open_intake: Callable[..., Any]) -> None:
    client, service = await open_intake(requests_per_minute=4, cases_per_hour=1)
    try:
        csrf = await page_token(client)
        status, _ = await post(client, csrf, "/api/cases", {"items": [item("a")]})
        assert status == 200
        status, answer = await post(client, csrf, "/api/cases", {"items": [item("b")]})
        assert status == 429 and answer["error"]["code"] == "RATE_LIMITED"
        assert len(await service.pending_cases()) == 1
        for _ in range(2):
            status, _ = await post(client, csrf, "/api/status", {"reference": "x", "pin": "1"})
            assert status == 404
        response = await client.post("/api/status", json={"reference": "x", "pin": "1"},
                                     headers={"X-CSRF-Token": csrf})
        assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    finally:
        await service.close()


def test_the_language_is_chosen_by_query_then_browser_then_english() -> None:
    assert choose_language("es", "en") == "es"
    assert choose_language(None, "fr-CA, es;q=0.8, en;q=0.5") == "es"
    assert choose_language(None, "en;q=0.2, es-MX;q=0.9") == "es"
    assert choose_language("xx", "de") == "en"
    assert choose_language(None, None) == "en"
    for lang, text in TEXT.items():
        assert text.keys() == TEXT["en"].keys(), lang


async def test_behind_a_proxy_the_limits_count_the_address_the_proxy_added(
        open_intake: Callable[..., Any]) -> None:
    client, service = await open_intake(cases_per_hour=1, behind_proxy=True)
    try:
        csrf = await page_token(client)
        for address, expected in (("10.0.0.1", 200), ("10.0.0.2", 200), ("10.0.0.1", 429)):
            response = await client.post(
                "/api/cases", json={"items": [item(address + str(expected))]},
                headers={"X-CSRF-Token": csrf,
                         "X-Forwarded-For": f"203.0.113.{expected}, {address}"})
            assert response.status == expected, address
    finally:
        await service.close()


async def test_too_many_wrong_pins_lock_the_case_and_say_so(
        intake: tuple[TestClient[Any, Any], NodeService, str]) -> None:
    client, _, csrf = intake
    status, opened = await post(client, csrf, "/api/cases", {"items": [item("a")]})
    assert status == 200
    for _ in range(30):
        response = await client.post("/api/status", json={"reference": opened["reference"],
                                                          "pin": "00000000"},
                                     headers={"X-CSRF-Token": csrf})
        if response.status == 429:
            break
        assert response.status == 404
    answer = await response.json()
    assert response.status == 429 and answer["error"]["code"] == "CASE_LOCKED", answer
    assert int(response.headers["Retry-After"]) >= 1
