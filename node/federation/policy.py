"""Who may receive a record's body, and whose bodies we keep.

Records always travel as part of their origin's hash chain; when policy forbids a body from
reaching a peer, that peer gets the record's *stub* (signed head, no body) instead, so its copy
of the chain has no gap and the withheld body is visible as withheld.

Serving a peer (``may_send_body``), a body goes out only if:

* its scope allows it: ``all``; ``group`` when the peer is configured in that group; ``peers``
  only when we are the record's origin (direct peers of the origin, never relayed);
* its jurisdictions, if any, include the peer's configured jurisdiction;
* for ``add`` records, every list and every label passes the peer's send policy.

``key``, ``key_revoke``, ``revoke`` and ``profile`` bodies always go, whatever the record's
scope: every reader needs them to build the key ring, the state of the lists and the origin's
display name, and they carry nothing private (a key id; record ids and a reason from a fixed
list; what the origin chose to publish about itself).

Records that no honest policy stubs are stated once, in the protocol
(``protocol.records.stub_refusal``): ``key`` and ``key_revoke``, and any other non-``add``
record of scope ``all`` without jurisdictions (only ``add`` records have lists and labels for
a send policy to act on). A relay that serves such a record as a stub is hiding a body from
us, e.g. a victim's withdrawal or a key revocation, so the receiver (``pages.verify_page``)
refuses the stub as a fault of that peer instead of storing a hole nothing would ever fill.

Receiving from a peer (``may_keep_body``), a body is kept only if it passes our accept policy
for that peer, and a ``peers``-scoped body is kept only when it comes from its origin itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hashmesh.node.config.peers import PeerConfig
from hashmesh.protocol.records import AddBody, SignedRecord

# Record types whose bodies every peer receives and every receiver keeps.
ALWAYS_WITH_BODY = frozenset({"key", "key_revoke", "revoke", "profile"})


@dataclass(frozen=True)
class RecordScope:
    """The policy-relevant facts of one stored record."""

    origin: str
    type: str
    scope: str
    group: str | None
    jurisdictions: Sequence[str]
    lists: Sequence[str] | None
    labels: Sequence[str]

    @classmethod
    def of(cls, record: SignedRecord) -> RecordScope:
        dist = record.head.dist
        lists: list[str] | None = None
        labels: list[str] = []
        if isinstance(record.body, AddBody):
            lists = sorted({item.list for item in record.body.items})
            labels = sorted({label for item in record.body.items for label in item.labels})
        return cls(record.head.origin, record.head.type, dist.scope, dist.group,
                   dist.jurisdictions, lists, labels)

    @classmethod
    def from_row(cls, origin: str, record_type: str, scope: str, group: str | None,
                 jurisdictions: str | None, lists: str | None, labels: str | None) -> RecordScope:
        return cls(origin, record_type, scope, group, json.loads(jurisdictions or "[]"),
                   None if lists is None else json.loads(lists), json.loads(labels or "[]"))


def may_send_body(record: RecordScope, peer: PeerConfig, our_origin: str) -> bool:
    """Whether ``peer`` may receive this record's body from us."""
    if record.type in ALWAYS_WITH_BODY:
        return True
    if not _scope_allows(record, peer, our_origin):
        return False
    if record.jurisdictions and peer.jurisdiction not in record.jurisdictions:
        return False
    if record.lists is not None:
        if not all(peer.sends_list(name) for name in record.lists):
            return False
        if not peer.sends_labels(record.labels):
            return False
    return True


def _scope_allows(record: RecordScope, peer: PeerConfig, our_origin: str) -> bool:
    if record.scope == "all":
        return True
    if record.scope == "group":
        return record.group in peer.groups
    return record.origin == our_origin


def may_keep_body(record: SignedRecord, peer: PeerConfig) -> bool:
    """Whether we store the body of ``record`` received from ``peer`` (else its stub).

    Runs for every record of a sync page, so it checks each item in place instead of
    building a ``RecordScope`` (sorted sets of lists and labels): every list and every label
    must pass, so the order and repeats do not matter.
    """
    body = record.body
    if body is None:
        return False
    if record.head.type in ALWAYS_WITH_BODY:
        return True
    if record.head.dist.scope == "peers" and (peer.origin is None
                                              or peer.origin.id != record.head.origin):
        return False
    if isinstance(body, AddBody):
        return all(peer.accepts_list(item.list) and peer.accepts_labels(item.labels)
                   for item in body.items)
    return True
