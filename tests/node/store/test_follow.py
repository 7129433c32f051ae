"""A follower's poll of the change feed loses nothing when one of its reads fails.

The cause of issue 16's stalled follower: ``FeedFollower.poll`` moved its entry position as
soon as the entries read returned; when the removals read after it then failed (a dropped
connection), the entries read went down with the exception and the position stayed past them,
so the add was never indexed. The failure here is a real one on the real server: the table
the removals read is renamed away for one poll."""

from __future__ import annotations

import psycopg
import pytest

from hashmesh.node.matching.follow import FeedFollower
from hashmesh.node.store.cluster import Cluster
from hashmesh.node.store.postgres import PostgresStore
from hashmesh.node.store.sqlite import AsyncStore
from tests.protocol.builders import ROOT, add_body, pdq_hex


async def test_a_poll_whose_removals_read_fails_keeps_its_entries_for_the_next(
        pg_url: str) -> None:
    writer = PostgresStore(pg_url)  # signs without a lease, as an operator's command does
    reader = AsyncStore(PostgresStore(pg_url, follower=True))
    cluster = Cluster(reader.store, "http://follower:1")  # type: ignore[arg-type]
    follower = FeedFollower(reader, cluster)
    try:
        await follower.start()
        _, changes = writer.append_local(signer=ROOT, origin=ROOT.id, body=add_body(pdq_hex(1)))
        added = [i for ids, _ in changes.added.values() for i in ids]
        assert added
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("ALTER TABLE entry_changes RENAME TO entry_changes_away")
            with pytest.raises(psycopg.errors.UndefinedTable):
                await follower.poll()
            admin.execute("ALTER TABLE entry_changes_away RENAME TO entry_changes")
        polled = await follower.poll()
        assert [i for ids, _ in polled.added.values() for i in ids] == added
        assert follower.entry_id == max(added)
    finally:
        cluster.close()
        reader.close()
        writer.close()
