"""What the status page shows, gathered from the node's real state.

Everything here is read from what the node already keeps: the store (heads, frozen origins,
evidence, pull cursors, the audit table), the service's status (with each peer link's sync
state: up or down, last pull, failures, backoff, last error, ``federation/link.py``) and the
Prometheus registry (match counters).

Not shown, because other work owns them: a peer's lag in records
(``hashmesh_peer_records_behind``) and propagation percentiles.
"""

from __future__ import annotations

import time
from typing import Any

from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import Store

AUDIT_ROWS = 30


def _total(service: NodeService, name: str) -> float:
    """The sum of a counter over all its labels."""
    total = 0.0
    for metric in service.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                total += sample.value
    return total


async def page_state(service: NodeService) -> dict[str, Any]:
    """Everything the page renders, as plain values (the template only formats)."""
    status = await service.status()
    heads = await service.store.read(Store.heads)
    frozen = await service.store.read(Store.frozen)
    evidence = await service.store.read(Store.evidence)
    cursors = await service.store.read(Store.cursors)
    audit = await service.store.read(lambda s: s.audit_rows(AUDIT_ROWS))
    profiles = await service.store.read(lambda s: s.profiles())
    now = time.time()

    evidence_by_origin: dict[str, int] = {}
    for item in evidence:
        origin = str(item.get("origin"))
        evidence_by_origin[origin] = evidence_by_origin.get(origin, 0) + 1
    shown = {head.origin: service.origin_profile(head.origin, profiles) for head in heads}
    origins = [{
        "origin": head.origin,
        "name": (shown[head.origin] or {}).get("name"),
        "self_declared": bool((shown[head.origin] or {}).get("self_declared")),
        "declared": (shown[head.origin] or {}).get("declared"),
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
    sync = status["peer_sync"]
    peers = []
    for peer in service.peers:
        state = sync.get(peer.name, {})
        error = state.get("last_error")
        peers.append({
            "name": peer.name, "url": peer.url,
            "state": state.get("state", "not tried yet"),
            "failures": state.get("failures", 0),
            "last_pull": state.get("last_pull"),
            "lag": state.get("pull_lag_seconds"),
            "backoff": state.get("backoff_seconds"),
            "error": error, "error_age": None if error is None else now - error["at"],
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
        "names": {o["origin"]: o["name"] for o in origins if o["name"]},
        "origins": origins,
        "peers": peers,
        "peers_config": status["peers_config"],
        "receipts": receipts,
        "match": {"queries": int(queries), "hits": int(hits),
                  "rate": None if not queries else hits / queries},
        "audit": [{**row, "age": max(0.0, now - row["ts"] / 1000)} for row in audit],
        "now": now,
    }
