"""Retention on real nodes: the hashes of withdrawn and expired items leave every derived
table, the log still verifies, and a fresh peer still syncs it (with stubs in their place)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hashmesh.node.api.taxii import indicator
from hashmesh.node.cli.local import verify_store
from hashmesh.protocol.records import Distribution, HashEntry, Item, SignedRecord
from tests.federation.cluster import Cluster, Node, eventually
from tests.node.test_taxii import valid

DAY_MS = 86_400_000
KEPT, WITHDRAWN, EXPIRING, RELAYED = ("a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32)


def dump(node: Node) -> str:
    """Every row of every table of the node's database, as SQL text."""
    conn = sqlite3.connect(node.svc.config.db_path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


async def test_pruned_hashes_are_gone_and_the_log_still_verifies_and_syncs(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    a, b = cluster.make("a"), cluster.make("b")
    cluster.link("a", "b")
    await cluster.start("a", "b")
    try:
        kept = await a.add(KEPT)
        withdrawn = await a.add(WITHDRAWN)
        expires = int(time.time() * 1000) + 300
        [expiring] = await a.svc.add(
            [Item((HashEntry("pdq", EXPIRING),), "ncii", expires=expires)], Distribution(), "t")
        relayed = await b.add(RELAYED)  # b's record, relayed to a, then withdrawn by b
        await b.revoke(relayed)
        await a.revoke(withdrawn)

        async def a_has_b() -> bool:
            return (await a.heads()).get(b.origin) == (await b.heads()).get(b.origin)
        await eventually(a_has_b, what="a to hold b's log")
        await eventually(lambda: _after(expires), what="the item to expire")
        await a.svc.sweep_expired()
        before = dump(a)
        assert all(value in before for value in (KEPT, WITHDRAWN, EXPIRING, RELAYED))

        assert await a.svc.prune_retained() == {"hashes": 0, "items": 0, "records_stubbed": 0}
        later = int(time.time() * 1000) + 30 * DAY_MS + 1000
        pruned = await a.svc.prune_retained(now=later)
        assert pruned == {"hashes": 3, "items": 3, "records_stubbed": 3}

        after = dump(a)
        assert KEPT in after
        for gone in (WITHDRAWN, EXPIRING, RELAYED):
            assert gone not in after
        store = a.svc.store.store
        assert not list(verify_store(store))
        for record_id in (withdrawn, expiring.id, relayed):
            raw = store.record_bytes(record_id)
            assert raw is not None and SignedRecord.from_bytes(raw).is_stub
        assert not SignedRecord.from_bytes(store.record_bytes(kept) or b"").is_stub
        [audited] = [r for r in store.audit_rows(50) if r["action"] == "retention_prune"]
        assert audited["detail"]["hashes"] == 3
        assert (await a.svc.prune_retained(now=later))["hashes"] == 0  # nothing twice

        # the change feed still says the items were added and withdrawn, without their hashes
        feed = store.changes_after(0, 1000, None)
        pruned_items = [row for row in feed if row[4] in (withdrawn, expiring.id)]
        assert {row[1] for row in pruned_items} >= {"add", "revoke", "expire"}
        assert all(row[8] == [] for row in pruned_items)
        erased = indicator(pruned_items[-1], 0, 1, {"pdq": 31})
        assert valid(erased) and erased["revoked"]

        # a body offered again (a peer's pull or body repair) does not bring the hash back
        full = SignedRecord.from_bytes(b.svc.store.store.record_bytes(relayed) or b"")
        assert not full.is_stub
        store.ingest([full], source="peer")
        assert RELAYED not in dump(a)

        c = cluster.make("c")  # a fresh peer syncs a's log, stubs and all
        cluster.link("a", "c")
        cluster.reload_peers("a")
        await cluster.start("c")

        async def c_synced() -> bool:
            heads, wanted = await c.heads(), await a.heads()
            return all(heads.get(o) == wanted.get(o) for o in (a.origin, b.origin))
        await eventually(c_synced, what="c to sync a's log")
        synced = dump(c)
        assert KEPT in synced and WITHDRAWN not in synced and EXPIRING not in synced
        assert not list(verify_store(c.svc.store.store))
        assert SignedRecord.from_bytes(c.svc.store.store.record_bytes(withdrawn) or b"").is_stub
        assert "retention-sweeper" in a.svc.tasks.status()
    finally:
        await cluster.stop()


async def _after(ms: int) -> bool:
    return time.time() * 1000 > ms
