"""Following the database's changes into this process's index, when several processes serve
one node (``node/store/cluster.py``): new hashes from ``entries`` and hashes no longer in force
from ``entry_changes``, each tailed by id. The index is updated incrementally, never rebuilt.

Positions are taken before the index is loaded (``start``), so that nothing committed while it
loads is missed: entries up to the position are loaded, later ones followed; a removal read
twice is harmless (removing an absent id does nothing).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from hashmesh.node.store.interface import AsyncStore, Changes, NodeStore

if TYPE_CHECKING:
    from hashmesh.node.store.cluster import Cluster

BATCH = 50_000


class FeedFollower:
    """Where this process's index stands in the change feed, and how to read what follows."""

    def __init__(self, store: AsyncStore, cluster: Cluster) -> None:
        self.store = store
        self.cluster = cluster
        self.entry_id = 0  # every entry up to this id is in the index (or not in force)
        self.removal_id = 0  # every removal up to this id is applied

    async def start(self) -> int:
        """Take the current positions; returns the last entry id, to load the index through."""
        self.removal_id, self.entry_id = await self.positions_now()
        return self.entry_id

    async def positions_now(self) -> tuple[int, int]:
        """The feed's current (removal, entry) positions. A leader moves to them while it
        provably held the lease when they were read (every row up to them is its own, and its
        index has it), so that, demoted, it reads only what it may have missed."""
        removal = await self.store.read(lambda s: self.cluster.last_removal())
        entry = await self.store.read(lambda s: s.last_entry_id())
        return removal, entry

    async def poll(self, until: int | None = None) -> Changes:
        """Everything committed since the last poll, as one ``Changes`` (new entries through
        id ``until`` at least, when given: a catch-up before lookups need not chase a bulk
        load still being written; removals always all).

        The positions move only once every read of the poll has succeeded: a read that fails
        (a dropped connection, the database restarting) after others succeeded must not
        leave the positions past changes the caller never received, or the index would miss
        them for good (issue 16's stalled follower: its removals read failed after its
        entries read had moved on past the add it was waiting for).
        """
        changes = Changes()
        entry_id, removal_id = self.entry_id, self.removal_id
        while until is None or entry_id < until:
            last, added = await self.store.read(partial(_entries_after, after=entry_id))
            changes.extend(Changes(added=added))
            if last == entry_id:
                break
            entry_id = last
        while True:
            last, removed = await self.store.read(
                partial(_removals_after, cluster=self.cluster, after=removal_id))
            changes.removed.extend(removed)
            if last == removal_id:
                break
            removal_id = last
        self.entry_id, self.removal_id = entry_id, removal_id
        return changes


def _entries_after(store: NodeStore, after: int
                   ) -> tuple[int, dict[str, tuple[list[int], list[str]]]]:
    return store.entries_after(after, BATCH)


def _removals_after(_store: NodeStore, cluster: Cluster, after: int) -> tuple[int, list[int]]:
    return cluster.removals_after(after, BATCH)
