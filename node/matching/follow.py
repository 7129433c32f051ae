"""Following the database's changes into this process's index, when several processes serve
one node (``node/store/cluster.py``): new hashes from ``entries`` and hashes no longer in force
from ``entry_changes``, each tailed by id. The index is updated incrementally, never rebuilt.

Positions are taken before the index is loaded (``start``), so that nothing committed while it
loads is missed: entries up to the position are loaded, later ones followed; a removal read
twice is harmless (removing an absent id does nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hashmesh.node.store.interface import AsyncStore, Changes

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

    async def poll(self) -> Changes:
        """Everything committed since the last poll, as one ``Changes``."""
        changes = Changes()
        while True:
            last, added = await self.store.read(
                lambda s: s.entries_after(self.entry_id, BATCH))
            changes.extend(Changes(added=added))
            if last == self.entry_id:
                break
            self.entry_id = last
        while True:
            last, removed = await self.store.read(
                lambda s: self.cluster.removals_after(self.removal_id, BATCH))
            changes.removed.extend(removed)
            if last == self.removal_id:
                break
            self.removal_id = last
        return changes
