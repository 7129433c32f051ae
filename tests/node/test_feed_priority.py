"""Matching goes first: feed and TAXII pages yield to match requests in flight, and still end.

A real server on loopback, a real SQLite file. A match request is held in flight for as long
as the test wants by streaming its body (``POST /v1/match/image`` counts as in flight from its
headers on): the page builders must pause between chunks while it is, which
``hashmesh_feed_yields_total`` counts, and every page must still arrive while it is held (the
pauses are bounded, so a fetch never starves). Nothing here is timed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp.test_utils import TestClient

from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.api.taxii import TAXII_MEDIA_TYPE, collection_id
from tests.node.test_taxii import bulk_add

if TYPE_CHECKING:
    from hashmesh.node.runtime.pressure import MatchPressure

Client = TestClient[Any, Any]
ITEMS = 1200
PAGE = 1000


async def yields(api: Client, route: str) -> float:
    text = await (await api.get("/metrics")).text()
    found = re.search(rf'^hashmesh_feed_yields_total{{route="{route}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def fetch_feed(api: Client) -> int:
    """Every change, a page of ``PAGE`` at a time: how many."""
    count, after, more = 0, "0", True
    while more:
        response = await api.get("/v1/changes", params={"after": after, "limit": PAGE})
        assert response.status == 200, await response.text()
        page = await response.json()
        count += len(page["changes"])
        after, more = page["next"], page["more"]
    return count


async def fetch_taxii(api: Client) -> int:
    """Every object of the ncii collection, a page of ``PAGE`` at a time: how many."""
    path = f"/taxii2/api/collections/{collection_id('ncii')}/objects/"
    count, params = 0, {"limit": str(PAGE)}
    while True:
        response = await api.get(path, params=params, headers={"Accept": TAXII_MEDIA_TYPE})
        assert response.status == 200, await response.text()
        envelope = await response.json(content_type=None)
        count += len(envelope.get("objects", []))
        if not envelope["more"]:
            return count
        params = {"limit": str(PAGE), "next": envelope["next"]}


class HeldMatch:
    """A match request in flight until ``release``: its body is sent only then."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.go = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    async def _body(self) -> AsyncIterator[bytes]:
        yield b"\xff"
        await self.go.wait()
        yield b"not an image"

    async def _send(self) -> int:
        response = await self.api.post("/v1/match/image", data=self._body())
        return response.status

    async def __aenter__(self) -> HeldMatch:
        self.task = asyncio.create_task(self._send())
        for _ in range(500):  # until the node is serving it (headers read, body awaited)
            if _pressure(self.api).in_flight:
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("the held match request never reached the node")

    async def __aexit__(self, *_: object) -> None:
        self.go.set()
        assert self.task is not None
        assert await self.task == 422  # not an image: answered, once its body came
        assert _pressure(self.api).in_flight == 0


def _pressure(api: Client) -> MatchPressure:
    return api.app[SERVICE_KEY].matching.pressure


async def test_feed_pages_yield_to_matches_in_flight_and_still_arrive(api: Client) -> None:
    await bulk_add(api, 0, ITEMS)
    assert await fetch_feed(api) == ITEMS  # no match in flight: no pause
    assert await yields(api, "changes") == 0
    async with HeldMatch(api):
        assert await fetch_feed(api) == ITEMS  # every page arrives while the match is held
        paused = await yields(api, "changes")
    assert paused >= 1
    assert await fetch_feed(api) == ITEMS
    assert await yields(api, "changes") == paused  # the match answered: no more pauses


async def test_taxii_pages_yield_to_matches_in_flight_and_still_arrive(api: Client) -> None:
    await bulk_add(api, 0, ITEMS)
    assert await fetch_taxii(api) == ITEMS
    assert await yields(api, "taxii") == 0
    async with HeldMatch(api):
        assert await fetch_taxii(api) == ITEMS
        paused = await yields(api, "taxii")
    assert paused >= 1
    assert await yields(api, "changes") == 0
