"""What a node still applies from an origin it has frozen (SPEC §11.2).

Freezing an origin on equivocation stops its log from growing, so that nobody picks a branch.
Applied to everything, it would also let whoever forked the log (often a thief of one signing
key) hold the origin's withdrawals hostage; applied to nothing, likewise. The rule here sits
between: records the node reads *detached* from a frozen origin (verified, not chained) are
applied only when they can remove power or content and cannot have come from the fork:

* a ``key_revoke`` (signed by the root key, which a fork of a signing key cannot forge) is
  applied to the key ring at once: it can only shrink what the origin's keys may sign;
* a ``revoke`` is applied to list state if its key is valid at its seq and is the root key or
  a signing key not named by any evidence of the freeze;
* anything else (``add``, ``key``, ``feedback``), and revokes that fail the key test, are held
  for the operator: a forged add or grant would inject content or power.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.records import KeyRevokeBody, RevokeBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, verify

Action = Literal["apply", "hold"]


def implicated_keys(evidence: Iterable[Evidence]) -> frozenset[str]:
    """Every key that signed a conflicting record in ``evidence`` (the root key included)."""
    return frozenset(key for e in evidence for key in (e.first.head.key, e.second.head.key))


def detached_action(record: SignedRecord, keyring: KeyRing, evidence: Iterable[Evidence],
                    path: str = "record") -> Action:
    """``apply`` or ``hold`` for a record of a frozen origin read outside its chain.

    Raises ``ProtocolError`` (a peer fault) if the record does not verify against ``keyring``
    at its seq: a record signed by a key outside its window never counts, frozen or not.
    ``evidence`` is what the node holds against the origin. The caller applies a
    ``key_revoke`` to its key ring and a ``revoke`` to list state, never to the log.
    """
    verify(record, keyring, path)
    body = record.body
    if body is None:
        return "hold"  # a stub has nothing to apply
    if isinstance(body, KeyRevokeBody):
        return "apply"
    if not isinstance(body, RevokeBody):
        return "hold"
    key = record.head.key
    if key != record.head.origin and key in implicated_keys(evidence):
        return "hold"
    return "apply"  # the root key is the identity: its revokes always count
