"""What the status page shows, gathered from the node's real state.

Everything here is read from what the node already keeps: the store (heads, frozen origins,
evidence, pull cursors, the audit table), the service's status, the Prometheus registry
(peer up/down, match counters) and the federation's links (failures, hence backoff). The
one thing federation does not keep is a peer's last error: it only logs it, so
``PeerErrors`` is a logging handler on ``hashmesh.sync`` that remembers the last failure per
peer from the log record's own arguments (not by parsing text).

Not shown, because the node does not record them yet (they need changes in
``node/federation/sync.py``): a peer's last successful pull time, its lag in records and in
seconds, and propagation percentiles.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import Store

AUDIT_ROWS = 30
SYNC_LOGGER = "hashmesh.sync"


@dataclass(frozen=True)
class PeerError:
    at: float
    kind: str
    message: str
    retry_in: float


class PeerErrors(logging.Handler):
    """The last sync failure of each peer, as federation logs it:
    ``sync with peer %s failed (%s: %s); retrying in %.1f s``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: dict[str, PeerError] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (isinstance(args, tuple) and len(args) == 4
                and record.msg.startswith("sync with peer")):
            peer, kind, exc, delay = args
            self.last[str(peer)] = PeerError(record.created, str(kind), str(exc)[:500],
                                             float(delay))  # type: ignore[arg-type]

    def install(self) -> PeerErrors:
        logging.getLogger(SYNC_LOGGER).addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger(SYNC_LOGGER).removeHandler(self)


def _sample(service: NodeService, name: str, labels: dict[str, str]) -> float | None:
    value = service.metrics.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def _total(service: NodeService, name: str) -> float:
    """The sum of a counter over all its labels."""
    total = 0.0
    for metric in service.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


async def page_state(service: NodeService, errors: PeerErrors | None) -> dict[str, Any]:
    """Everything the page renders, as plain values (the template only formats)."""
    status = await service.status()
    heads = await service.store.read(Store.heads)
    frozen = await service.store.read(Store.frozen)
    evidence = await service.store.read(Store.evidence)
    cursors = await service.store.read(Store.cursors)
    audit = await service.store.read(lambda s: s.audit_rows(AUDIT_ROWS))
    now = time.time()

    evidence_by_origin: dict[str, int] = {}
    for item in evidence:
        origin = str(item.get("origin"))
        evidence_by_origin[origin] = evidence_by_origin.get(origin, 0) + 1
    origins = [{
        "origin": head.origin,
        "name": service.origin_name(head.origin),
        "own": head.origin == service.origin,
        "seq": head.seq,
        "head_id": head.id,
        "head_age": max(0.0, now - head.ts / 1000),
        "frozen_at": frozen.get(head.origin),
        "evidence": evidence_by_origin.get(head.origin, 0),
    } for head in sorted(heads, key=lambda h: (h.origin != service.origin, -h.seq))]

    pulled: dict[str, dict[str, int]] = {}
    for peer_name, origin, seq in cursors:
        pulled.setdefault(peer_name, {})[origin] = seq
    links = service.federation.links if service.federation is not None else {}
    peers = []
    for peer in service.peers:
        link = links.get(peer.name)
        up = _sample(service, "hashmesh_peer_up", {"peer": peer.name})
        error = None if errors is None else errors.last.get(peer.name)
        failures = link.failures if link is not None else 0
        peers.append({
            "name": peer.name, "url": peer.url,
            "state": "not tried yet" if up is None else ("up" if up else "down"),
            "failures": failures,
            "backoff": failures > 0,
            "retry_at": None if error is None or not failures else error.at + error.retry_in,
            "error": error, "error_age": None if error is None else now - error.at,
            "pulled": {service.origin_name(o) or o: seq
                       for o, seq in sorted(pulled.get(peer.name, {}).items())},
        })

    receipts = [{**node, "heard_age": None if node["last_heard_ms"] is None
                 else max(0.0, now - node["last_heard_ms"] / 1000)}
                for node in status["receipts"]["nodes"]]

    queries = _total(service, "hashmesh_match_queries_total")
    hits = _total(service, "hashmesh_match_hits_total")
    return {
        "status": status,
        "origins": origins,
        "peers": peers,
        "peers_config": status["peers_config"],
        "receipts": receipts,
        "match": {"queries": int(queries), "hits": int(hits),
                  "rate": None if not queries else hits / queries},
        "audit": [{**row, "age": max(0.0, now - row["ts"] / 1000)} for row in audit],
        "now": now,
    }
