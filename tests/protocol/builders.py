"""Small builders shared by the protocol tests: fixed keys, bodies and signed logs."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import HealthCheck, settings

from hashmesh.protocol import canonical
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.keys import SigningKey, b64url_encode
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import (
    DOMAIN,
    AddBody,
    Body,
    Distribution,
    FeedbackBody,
    KeyBody,
    KeyRevokeBody,
    RevokeBody,
    SignedRecord,
)
from hashmesh.protocol.signing import KeyGrant, KeyRing

# Property tests run on a shared 2-core machine: no per-example deadline, no slowness check.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROOT = SigningKey(bytes(range(32)))
SIGNER = SigningKey(bytes(range(32, 64)))
ROTATED = SigningKey(bytes(range(64, 96)))
STRANGER = SigningKey(bytes(range(96, 128)))
ORIGIN = ROOT.id
T0 = 1_700_000_000_000
PDQ = HASH_TYPES["pdq"].examples()


def pdq_hex(n: int) -> str:
    """A distinct valid pdq value for any ``n``."""
    return f"{n:064x}"


def fixed_salt(content: object) -> str:
    """A salt derived from the body's content, so that test records are reproducible (real
    signers draw a random one: ``records.new_salt``)."""
    return b64url_encode(hashlib.sha256(canonical.encode(content)).digest()[:16])


def add_body(*values: str, **item: Any) -> AddBody:
    """An add with one pdq item per value (``item`` fields apply to every item)."""
    items = [{"hashes": [{"type": "pdq", "value": v}], "list": "ncii",
              "tier": "victim_submitted", **item} for v in values or (PDQ[0],)]
    return AddBody.from_json({"items": items, "salt": fixed_salt(items)}, "body")


def revoke_body(*refs: str, reason: str = "withdrawn") -> RevokeBody:
    targets = []
    for ref in refs:
        record, _, index = ref.partition("/")
        targets.append({"record": record, "item": int(index)} if index else {"record": record})
    return RevokeBody.from_json({"targets": targets, "reason": reason}, "body")


def feedback_body(ref: str, verdict: str = "confirmed") -> FeedbackBody:
    record, _, index = ref.partition("/")
    target: dict[str, Any] = {"record": record}
    if index:
        target["item"] = int(index)
    return FeedbackBody.from_json({"target": target, "verdict": verdict,
                                   "salt": fixed_salt([target, verdict])}, "body")


def key_body(key: SigningKey) -> KeyBody:
    return KeyBody(key.id)


def key_revoke_body(key: SigningKey) -> KeyRevokeBody:
    return KeyRevokeBody(key.id)


class Chain:
    """One origin's log, signed with the protocol's own ``append``."""

    def __init__(self, root: SigningKey = ROOT) -> None:
        self.root = root
        self.origin = root.id
        self.records: list[SignedRecord] = []
        self.head: LogHead | None = None

    def add(self, body: Body, signer: SigningKey | None = None, *, ts: int | None = None,
            dist: Distribution | None = None) -> SignedRecord:
        seq = 1 if self.head is None else self.head.seq + 1
        record = append(self.head, signer=signer or self.root, origin=self.origin, body=body,
                        now_ms=T0 + 1000 * seq if ts is None else ts, dist=dist)
        self.records.append(record)
        self.head = LogHead.of(record)
        return record

    def authorise(self, key: SigningKey = SIGNER) -> SignedRecord:
        return self.add(key_body(key))


def keyring_with(*keys: SigningKey, origin: str = ORIGIN) -> KeyRing:
    """A key ring in which ``keys`` were authorised at seq 0 (valid from seq 1)."""
    return KeyRing(origin, {k.id: (KeyGrant(k.id, 0),) for k in keys})


def resign(envelope: dict[str, Any], signer: SigningKey) -> bytes:
    """Re-sign an edited envelope (head and body as JSON), recomputing nothing else."""
    head_bytes = canonical.encode(envelope["head"])
    envelope = dict(envelope, sig=b64url_encode(signer.sign(DOMAIN + head_bytes)))
    return canonical.encode(envelope)
