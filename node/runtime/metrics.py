"""Prometheus metrics of one node, on a registry of its own.

A registry per node (not prometheus-client's global one) lets several nodes run in one
process, as the federation tests do, without their counters colliding.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["CONTENT_TYPE_LATEST", "NodeMetrics", "labelled"]

M = TypeVar("M", bound=MetricWrapperBase)


@lru_cache(maxsize=1024)
def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered: prometheus-client's lookup costs ~2 µs, a few
    times per request on the match path."""
    return metric.labels(*values)


# Propagation runs from well under a second (a direct peer, pushed) to hours (a node that was
# down), against deadlines of hours (Take It Down: 48 h).
RECEIPT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                   14_400.0, 86_400.0, 172_800.0)


class NodeMetrics:
    """The counters, gauges and histograms a node exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "hashmesh_http_requests", "HTTP requests served", ["route", "status"], registry=r)
        self.match_queries = Counter(
            "hashmesh_match_queries", "Hashes looked up by match requests", ["hash_type"],
            registry=r)
        self.match_hits = Counter(
            "hashmesh_match_hits", "Matches returned", ["hash_type"], registry=r)
        self.match_seconds = Histogram(
            "hashmesh_match_seconds", "Time to answer one match request", registry=r,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
        self.records_signed = Counter(
            "hashmesh_records_signed", "Records signed by this node", ["type"], registry=r)
        self.records_ingested = Counter(
            "hashmesh_records_ingested", "Verified records stored from peers", registry=r)
        self.records_rejected = Counter(
            "hashmesh_records_rejected", "Records refused from peers", ["code"], registry=r)
        self.hashes_active = Gauge(
            "hashmesh_hashes_active", "Hashes in force in the match index", ["hash_type"],
            registry=r)
        self.index_bytes = Gauge(
            "hashmesh_index_bytes", "Approximate memory of the match indexes", registry=r)
        self.equivocations = Gauge(
            "hashmesh_equivocation_evidence", "Stored equivocation evidence objects", registry=r)
        self.checkpoint_alarms = Gauge(
            "hashmesh_checkpoint_alarms", "Checkpoint alarms in force (SPEC §20): stale or "
            "behind (withholding), split_view", ["kind"], registry=r)
        self.checkpoint_age = Gauge(
            "hashmesh_witnessed_checkpoint_age_seconds", "Age of the newest witnessed "
            "checkpoint of each watched origin; -1 for none yet", ["origin"], registry=r)
        self.frozen_origins = Gauge(
            "hashmesh_frozen_origins", "Origins frozen after equivocation or a restored backup",
            registry=r)
        self.requests_refused = Counter(
            "hashmesh_peer_requests_refused", "Federation requests refused", ["code"],
            registry=r)
        self.peer_faults = Counter(
            "hashmesh_peer_faults", "What a peer sent that was refused (a stub of a record "
            "that always travels whole, a conflict signed by a revoked key, ...), by code",
            ["peer", "code"], registry=r)
        self.signing_blocked = Gauge(
            "hashmesh_signing_blocked", "1 if this node refuses to sign (e.g. restored backup)",
            registry=r)
        self.peer_up = Gauge(
            "hashmesh_peer_up", "1 if the last sync with the peer succeeded", ["peer"],
            registry=r)
        self.peer_lag = Gauge(
            "hashmesh_peer_records_behind", "Records of an origin that we hold and the peer's "
            "advertised heads do not show yet (negative: the peer holds more of that origin "
            "than we have pulled), as of the last sync with it", ["peer", "origin"], registry=r)
        # SPEC §21: from receipts, as they are stored (the signer's clock minus the target's ts)
        self.time_to_active = Histogram(
            "hashmesh_receipt_time_to_active_seconds", "Time from an add's signing to its "
            "active receipt, per receipting node", ["node"], registry=r, buckets=RECEIPT_BUCKETS)
        self.time_to_removal = Histogram(
            "hashmesh_receipt_time_to_removal_seconds", "Time from a revoke's signing to its "
            "removed receipt, per receipting node", ["node"], registry=r,
            buckets=RECEIPT_BUCKETS)

        self.peers_config_refused = Gauge(
            "hashmesh_peers_config_refused",
            "1 if the peers file on disk was refused at its last reload (the old peers stay "
            "in force; the reason is in /v1/status)", registry=r)
        self.background_task_failures = Counter(
            "hashmesh_background_task_failures", "Background loops that died (and were "
            "started again)", ["task"], registry=r)
        self.feed_yields = Counter(
            "hashmesh_feed_yields", "Pauses of feed and TAXII page builders while match "
            "requests were in flight (matching goes first)", ["route"], registry=r)
        self.wal_bytes = Gauge(
            "hashmesh_wal_bytes", "Size of the database's write-ahead log after the last "
            "checkpoint", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
