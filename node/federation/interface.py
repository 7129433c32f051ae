"""What federation needs from the node it runs in, as a ``typing.Protocol``.

Federation sits below the service (``cli -> api -> service -> federation``): it must not
import ``NodeService``, yet it reads the node's store and config, feeds the index what it
commits, and reports a restored backup or an equivocation. ``NodeService`` implements this
interface; tests may hand federation anything else that does.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from hashmesh.node.config.identity import Identity
from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import Supervisor
from hashmesh.node.store.sqlite import AsyncStore, Changes
from hashmesh.protocol.evidence import Evidence


class LocalNode(Protocol):
    """The node as federation sees it."""

    config: NodeConfig
    identity: Identity
    store: AsyncStore
    metrics: NodeMetrics
    peers: PeersConfig  # replaced whole when peers.toml reloads
    tasks: Supervisor  # runs the peer links

    @property
    def origin(self) -> str:
        """This node's own origin id (its root key)."""
        ...

    def queue_changes(self, changes: Changes) -> Changes:
        """Queue a commit's changes for the index; called on the store's writer thread right
        after the commit (so the queue is in commit order). Returns ``changes``."""
        ...

    def apply_changes_soon(self, changes: Changes | None = None) -> asyncio.Future[None]:
        """Apply the queued changes to the index; the future is done once it has."""
        ...

    async def own_log_behind(self, peer: str, peer_seq: int) -> None:
        """A peer holds more of our own log than we do: block signing."""
        ...

    async def record_equivocation(self, evidence: Evidence, peer: str) -> None:
        """Store the evidence, freeze the origin, alert."""
        ...
