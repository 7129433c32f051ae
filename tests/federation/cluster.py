"""Several real nodes in one process, each on its own 127.0.0.x address and free port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from hashmesh.node.api.app import create_app
from hashmesh.node.api.server import tls_context
from hashmesh.node.cli.local import create_node_dir
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config
from hashmesh.node.config.peers import PeerConfig, add_peer, remove_peer
from hashmesh.node.service import HashQuery, NodeService
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.records import Distribution, HashEntry, Item, Target
from tests.conftest import free_port


@dataclass
class Node:
    """One node of a test cluster: its directory, address and (when running) service."""

    name: str
    directory: Path
    host: str
    port: int
    origin: str
    node_key: str
    service: NodeService | None = None
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def peers_file(self) -> Path:
        return self.directory / "peers.toml"

    @property
    def svc(self) -> NodeService:
        assert self.service is not None, f"{self.name} is not running"
        return self.service

    async def add(self, value: str, *, list_name: str = "ncii",
                  dist: Distribution | None = None, labels: tuple[str, ...] = ()) -> str:
        item = Item(hashes=(HashEntry("pdq", value),), list=list_name, labels=labels)
        [record] = await self.svc.add([item], dist or Distribution(), "test")
        return record.id

    async def revoke(self, record_id: str) -> str:
        record = await self.svc.revoke([Target(record_id)], "withdrawn", "test")
        return record.id

    async def matches(self, value: str) -> list[dict[str, Any]]:
        [result] = await self.svc.match([HashQuery("pdq", value)], {}, None, "test")
        found: list[dict[str, Any]] = result["matches"]
        return found

    async def heads(self) -> dict[str, tuple[int, str]]:
        heads = await self.svc.store.read(lambda s: s.heads())
        return {h.origin: (h.seq, h.id) for h in heads}

    async def active_refs(self) -> set[tuple[str, int, str]]:
        """(record, item, value) of every hash in force: the node's state."""
        rows = await self.svc.store.read(lambda s: s.reader().execute(
            "SELECT r.id, e.item, e.value FROM entries e JOIN records r "
            "ON r.num = e.record_num WHERE e.active=1").fetchall())
        return {(r[0], r[1], r[2]) for r in rows}


@dataclass
class Cluster:
    root: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    pull_interval: int = 1

    def make(self, name: str, host: str | None = None) -> Node:
        host = host or f"127.0.0.{len(self.nodes) + 2}"
        port = free_port(host)
        config_path, _, origin = create_node_dir(self.root / name, name=name, host=host,
                                                 port=port)
        text = config_path.read_text().replace("pull_interval_seconds = 30",
                                               f"pull_interval_seconds = {self.pull_interval}")
        config_path.write_text(text)
        node_key = read_secret_key(self.root / name / "keys" / "node.key").id
        node = Node(name, self.root / name, host, port, origin, node_key)
        self.nodes[name] = node
        return node

    def peer_entry(self, node: Node, **policy: Any) -> PeerConfig:
        """How another node configures ``node`` as its peer: pin every cluster origin."""
        accept = policy.pop("accept_origins", None)
        if accept is None:
            accept = tuple(PublicKey.from_id(n.origin) for n in self.nodes.values())
        return PeerConfig(name=node.name, url=node.url, node_key=PublicKey.from_id(node.node_key),
                          origin=PublicKey.from_id(node.origin), accept_origins=accept, **policy)

    def link(self, a: str, b: str, **policy: Any) -> None:
        """Peer ``a`` and ``b`` both ways (same policy on both sides)."""
        add_peer(self.nodes[a].peers_file, self.peer_entry(self.nodes[b], **policy))
        add_peer(self.nodes[b].peers_file, self.peer_entry(self.nodes[a], **policy))

    def unlink(self, a: str, b: str) -> None:
        remove_peer(self.nodes[a].peers_file, b)
        remove_peer(self.nodes[b].peers_file, a)

    async def start(self, *names: str) -> None:
        for name in names or tuple(self.nodes):
            node = self.nodes[name]
            config = load_node_config(node.directory / "node.toml")
            node.service = await NodeService.open(config)
            node.runner = web.AppRunner(create_app(node.service), handle_signals=False,
                                        access_log=None)
            await node.runner.setup()
            await web.TCPSite(node.runner, node.host, node.port,
                              ssl_context=tls_context(config)).start()
            assert node.service.federation is not None
            node.service.federation.announce()  # as ``hashmesh run`` does once it listens

    async def stop(self, *names: str) -> None:
        for name in names or tuple(self.nodes):
            node = self.nodes[name]
            if node.runner is not None:
                await node.runner.cleanup()
            node.runner = None
            node.service = None

    def reload_peers(self, name: str) -> None:
        node = self.nodes[name]
        assert node.service is not None
        from hashmesh.node.federation.reload import PeersWatcher

        assert PeersWatcher(node.service, node.service.federation).reload()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0,
                     what: str = "condition") -> float:
    """Wait until ``check`` holds; return the seconds it took (bounded, never a timed assert)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)
