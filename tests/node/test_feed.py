"""The change feed (``GET /v1/changes``) on a real server, a real SQLite file, real records."""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hashmesh.node.api.app import create_app
from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.config.node import hash_token
from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import Store, now_ms
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import Distribution, HashEntry, Item, Target
from tests.conftest import NodeDir
from tests.node.test_api import add, error_of, pdq
from tests.node.test_store_ingest import add as add_body
from tests.protocol.builders import ROOT, STRANGER, Chain, feedback_body, revoke_body

Client = TestClient[Any, Any]


async def feed(api: Client, after: str = "0", **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/changes", params={"after": after, **params})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def follow(api: Client, after: str = "0", limit: int = 2) -> tuple[list[dict[str, Any]],
                                                                          str]:
    """Every change after ``after``, a page of ``limit`` at a time, and the last cursor."""
    seen: list[dict[str, Any]] = []
    while True:
        page = await feed(api, after, limit=limit)
        seen += page["changes"]
        after = page["next"]
        if not page["more"]:
            return seen, after


async def test_adds_revokes_verdicts_and_expiries_come_in_commit_order(api: Client) -> None:
    service = api.app[SERVICE_KEY]
    soon = now_ms() + 60_000
    added = await add(api, {"type": "pdq", "value": pdq(1)}, {"type": "md5", "value": "a" * 32},
                      labels=["intimate"])
    [item] = added["records"][0]["items"]
    later = await add(api, {"type": "pdq", "value": pdq(2)}, expires=soon)
    response = await api.post("/v1/revocations", json={"targets": [item], "reason": "withdrawn"})
    assert response.status == 201
    response = await api.post("/v1/feedback", json={"target": later["records"][0]["items"][0],
                                                    "verdict": "not_ncii"})
    assert response.status == 201
    await service.sweep_expired(now=soon)

    changes, _ = await follow(api)
    assert [c["kind"] for c in changes] == ["add", "add", "revoke", "verdict", "expire"]
    assert [int(c["cursor"]) for c in changes] == sorted(int(c["cursor"]) for c in changes)
    first, _, tombstone, verdict, expiry = changes
    assert first["item"] == item and first["labels"] == ["intimate"]
    assert {h["type"]: h["value"] for h in first["hashes"]} == {"pdq": pdq(1), "md5": "a" * 32}
    # a tombstone names the item and carries its hashes, so consumers keyed by hash drop it
    assert tombstone["item"] == item and tombstone["reason"] == "withdrawn"
    assert tombstone["hashes"] == first["hashes"]
    assert verdict["verdict"] == "not_ncii" and verdict["verdicts"] == {"not_ncii": 1}
    assert expiry["item"] == later["records"][0]["items"][0] and expiry["expires"] == soon
    await service.sweep_expired(now=soon + 1)
    assert (await feed(api, changes[-1]["cursor"]))["changes"] == []  # logged once


async def test_a_cursor_survives_a_restart(node_dir: NodeDir, aiohttp_client: Any) -> None:
    headers = {"Authorization": f"Bearer {node_dir.token}"}
    first = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    first.session.headers.update(headers)
    await add(first, {"type": "pdq", "value": pdq(3)})
    _, cursor = await follow(first)
    await first.close()

    second = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    second.session.headers.update(headers)
    assert (await feed(second, cursor))["changes"] == []
    await add(second, {"type": "pdq", "value": pdq(4)})
    changes, _ = await follow(second, cursor)
    assert [c["hashes"][0]["value"] for c in changes] == [pdq(4)]
    assert int(changes[0]["cursor"]) == int(cursor) + 1


async def test_a_stub_completed_later_appears_after_the_cursor_taken_before(api: Client) -> None:
    """A peer's record held as a stub gets its hashes when the body arrives: the change is
    numbered then, not at the stub's old place in the log, so a follower does not miss it."""
    service = api.app[SERVICE_KEY]
    chain = Chain()
    record = chain.add(add_body(0, 2))
    gone = chain.add(revoke_body(f"{record.id}/1"))
    await service.store.write(lambda s: s.ingest([record.stub(), gone], source="peer-a"))
    _, cursor = await follow(api)
    await add(api, {"type": "pdq", "value": pdq(5)})
    await service.store.write(lambda s: s.ingest([record], source="peer-b"))
    changes, _ = await follow(api, cursor)
    assert [(c["kind"], c["item"]) for c in changes][1:] == [
        ("add", f"{record.id}/0"), ("add", f"{record.id}/1"), ("revoke", f"{record.id}/1")]


async def test_paging_neither_skips_nor_repeats(api: Client) -> None:
    response = await api.post("/v1/records", json={"items": [
        {"hashes": [{"type": "pdq", "value": pdq(100 + i)}]} for i in range(25)]})
    assert response.status == 201
    changes, cursor = await follow(api, limit=4)
    assert [c["hashes"][0]["value"] for c in changes] == [pdq(100 + i) for i in range(25)]
    assert cursor == changes[-1]["cursor"]
    assert len({c["cursor"] for c in changes}) == 25


async def test_list_filter_keeps_the_cursor_moving(make_node_dir: Any,
                                                   aiohttp_client: Any) -> None:
    node_dir = make_node_dir()
    node_dir.config_path.write_text(node_dir.config_path.read_text().replace(
        'allowed = ["ncii"]', 'allowed = ["ncii", "other"]'))
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    client.session.headers["Authorization"] = f"Bearer {node_dir.token}"
    await add(client, {"type": "pdq", "value": pdq(6)}, list="other")
    await add(client, {"type": "pdq", "value": pdq(7)})
    page = await feed(client, list="ncii")
    assert [c["list"] for c in page["changes"]] == ["ncii"]
    assert [c["list"] for c in (await feed(client, list="other"))["changes"]] == ["other"]


async def test_an_existing_database_gets_its_change_log_on_open(node_dir: NodeDir) -> None:
    service = await NodeService.open(node_dir.config())
    [record] = await service.add([Item((HashEntry("pdq", pdq(i)),), "ncii") for i in range(3)],
                                 Distribution(), "t")
    await service.revoke([Target(record.id, 2)], "withdrawn", "t")
    before = await service.store.read(lambda s: s.changes_after(0, 100, None))
    await service.close()
    with sqlite3.connect(node_dir.config().db_path) as conn:  # as a database before the log
        conn.execute("DROP TABLE changes")
    service = await NodeService.open(node_dir.config())
    try:
        after = await service.store.read(lambda s: s.changes_after(0, 100, None))
    finally:
        await service.close()
    assert [(r[1], r[6]) for r in after] == [(r[1], r[6]) for r in before]
    assert [r[0] for r in after] == [1, 2, 3, 4]


async def test_bad_cursor_limit_and_filter_are_refused_by_field(api: Client) -> None:
    for params, code, field in [
            ({"after": "abc"}, "BAD_CURSOR", "after"),
            ({"after": "-1"}, "BAD_CURSOR", "after"),
            ({"after": "99999"}, "BAD_CURSOR", "after"),  # past the end of this log
            ({"limit": "0"}, "BAD_LIMIT", "limit"),
            ({"limit": "100000"}, "BAD_LIMIT", "limit"),
            ({"list": "Not A List!"}, "BAD_FILTER", "list"),
            ({"since": "1"}, "UNKNOWN_FIELD", "since")]:
        response = await api.get("/v1/changes", params=params)
        assert response.status == 400, params
        error = await error_of(response)
        assert (error["code"], error["field"]) == (code, field)


async def test_the_feed_needs_a_token_with_the_read_scope(make_node_dir: Any,
                                                          aiohttp_client: Any) -> None:
    node_dir = make_node_dir()
    node_dir.config_path.write_text(
        node_dir.config_path.read_text()
        + f'[[api.tokens]]\nname = "prometheus"\nsha256 = "{hash_token("scrape")}"\n'
        'scopes = ["metrics"]\n')
    client = await aiohttp_client(create_app(await NodeService.open(node_dir.config())))
    assert (await client.get("/v1/changes")).status == 401
    response = await client.get("/v1/changes", headers={"Authorization": "Bearer scrape"})
    assert response.status == 403
    assert (await error_of(response))["field"] == "Authorization"


@pytest.mark.parametrize("seed", range(4))
def test_a_follower_of_the_feed_ends_with_what_is_in_force(tmp_path: Any, seed: int) -> None:
    """Two origins' logs (adds, item and record revokes, feedback), stored in random pages,
    some records first as stubs and completed later, with a follower reading the feed in
    random-sized pages in between: replaying adds minus tombstones gives exactly the items the
    store holds in force, and no cursor comes twice."""
    rng = random.Random(seed)
    chains = [Chain(ROOT), Chain(STRANGER)]
    for chain in chains:
        adds: list[str] = []
        for n in range(12):
            roll = rng.random()
            if roll < 0.5 or not adds:
                record = chain.add(add_body(1000 * seed + 100 * chains.index(chain) + 10 * n,
                                            rng.randint(1, 3)))
                adds.append(record.id)
            elif roll < 0.8:
                target = rng.choice(adds)
                chain.add(revoke_body(rng.choice([target, f"{target}/0"])))
            else:
                chain.add(feedback_body(f"{rng.choice(adds)}/0", "not_ncii"))
    store = Store(tmp_path / "store.db")
    state: dict[str, bool] = {}
    seen: set[int] = set()
    cursor = 0

    def follow() -> None:
        nonlocal cursor
        while rows := store.changes_after(cursor, rng.randint(1, 7), None):
            for seq, kind, _, _, record_id, _, item, *_ in rows:
                assert seq not in seen and seq > cursor
                seen.add(seq)
                if kind == "add":
                    state[f"{record_id}/{item}"] = True
                elif kind in ("revoke", "expire"):
                    state[f"{record_id}/{item}"] = False
                cursor = seq

    try:
        pending = [list(chain.records) for chain in chains]
        stubbed: list[Any] = []
        while any(pending):
            chain_records = rng.choice([p for p in pending if p])
            page = [chain_records.pop(0) for _ in range(min(len(chain_records),
                                                            rng.randint(1, 4)))]
            if rng.random() < 0.3:  # held as stubs first, completed by a later page
                stubbed += page
                page = [record.stub() for record in page]
            store.ingest(page, source="peer")
            if stubbed and rng.random() < 0.5:
                store.ingest(stubbed, source="peer-b")
                stubbed = []
            follow()
        store.ingest(stubbed, source="peer-b")
        follow()
        in_force = {f"{e.record}/{e.item}" for record in chains[0].records + chains[1].records
                    for e in store.item_entries(record.id) if e.active}
    finally:
        store.close()
    assert {ref for ref, on in state.items() if on} == in_force


async def test_items_written_without_the_log_are_reported_at_start(
        node_dir: NodeDir, caplog: Any) -> None:
    service = await NodeService.open(node_dir.config())
    await service.add([Item((HashEntry("pdq", pdq(1)),), "ncii")], Distribution(), "t")
    await service.close()
    with sqlite3.connect(node_dir.config().db_path) as conn:  # as an older release would
        conn.execute("DELETE FROM changes")
    service = await NodeService.open(node_dir.config())
    await service.close()
    assert "the change log (GET /v1/changes" in caplog.text


async def test_a_quarantined_item_is_marked_in_the_feed_until_its_origin_confirms(
        api: Client, node_dir: NodeDir) -> None:
    """Issue 11's quarantine (``not_ncii`` from two origins) reaches feed consumers: the
    verdict change that starts it says ``quarantined``, as does every later read of the
    item's changes, and the origin's ``confirmed`` ends it with a change that says not."""
    service = api.app[SERVICE_KEY]
    added = await add(api, {"type": "pdq", "value": pdq(3)})
    [ref] = added["records"][0]["items"]
    others = [Chain(SigningKey(bytes([n] * 32))) for n in (7, 8)]
    for chain in others:
        record = chain.add(feedback_body(ref, "not_ncii"))
        await service.store.write(lambda s, r=record: s.ingest([r], source="peer"))
    changes, cursor = await follow(api)
    # each change says the item's state now: quarantined, though still in force
    assert [(c["kind"], c["quarantined"], c["in_force"]) for c in changes] == [
        ("add", True, True), ("verdict", True, True), ("verdict", True, True)]
    assert changes[-1]["verdicts"] == {"not_ncii": 2}

    response = await api.post("/v1/feedback", json={"target": ref, "verdict": "confirmed"})
    assert response.status == 201
    later, _ = await follow(api, cursor)
    assert [(c["kind"], c["verdict"], c["quarantined"]) for c in later] == [
        ("verdict", "confirmed", False)]


async def test_one_not_ncii_is_no_quarantine_in_the_feed(api: Client) -> None:
    service = api.app[SERVICE_KEY]
    [ref] = (await add(api, {"type": "pdq", "value": pdq(4)}))["records"][0]["items"]
    record = Chain(SigningKey(bytes([9] * 32))).add(feedback_body(ref, "not_ncii"))
    await service.store.write(lambda s: s.ingest([record], source="peer"))
    changes, _ = await follow(api)
    assert [c["quarantined"] for c in changes] == [False, False]
