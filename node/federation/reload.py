"""Reloading ``peers.toml`` without a restart: on SIGHUP, or when the file changes.

The new file is validated whole before anything changes; a file that does not validate is
refused with its located error in the log, and the running peers config stays in force
(as synapse does). A valid one is swapped in at once and the peer links reconciled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.federation.interface import LocalNode
from hashmesh.node.federation.sync import Federation

log = logging.getLogger("hashmesh.reload")

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RefusedReload:
    """The last peers file that did not load, shown in /v1/status, /metrics and the page."""

    at: float
    reason: str


class PeersWatcher:
    """Watches the peers file's size and mtime; ``reload()`` is also the SIGHUP handler."""

    def __init__(self, node: LocalNode, federation: Federation | None) -> None:
        self.node = node
        self.federation = federation
        self.path = node.config.federation.peers_file
        self.stamp = self._stamp()
        # set while the file on disk is one we refused; cleared by the next good reload
        self.refused: RefusedReload | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def start(self) -> None:
        self.node.tasks.start("peers-watcher", self._poll_forever)

    async def stop(self) -> None:
        await self.node.tasks.stop("peers-watcher")

    async def _poll_forever(self) -> None:
        """Reload once the file has changed *and* then stayed the same for one poll.

        An editor or ``echo >`` truncates before it writes; reading at that moment would
        swap in an empty (valid: no peers) config. Waiting for a stable size and mtime
        lets the writer finish first.
        """
        seen = self.stamp
        while True:
            await asyncio.sleep(POLL_SECONDS)
            stamp = self._stamp()
            if stamp != seen:
                seen = stamp
                continue
            if stamp != self.stamp:
                self.stamp = stamp
                self.reload()

    def reload(self) -> bool:
        """Validate and swap in the peers file; keep the old config if it does not load."""
        try:
            peers = self.node.config.load_peers()
        except ConfigError as exc:
            log.error("peers config NOT reloaded, keeping the running one: %s", exc)
            self.refused = RefusedReload(time.time(), str(exc))
            self.node.metrics.peers_config_refused.set(1)
            return False
        self.refused = None
        self.node.metrics.peers_config_refused.set(0)
        old = {p.name for p in self.node.peers}
        self.node.peers = peers
        if self.federation is not None:
            self.federation.reconcile(peers)
        new = {p.name for p in peers}
        log.info("peers config reloaded: %d peers (added %s, removed %s)", len(peers),
                 sorted(new - old) or "none", sorted(old - new) or "none")
        return True
