"""Receipts: a node's signed word that it applied other origins' adds and revokes (SPEC §21).

A ``receipt`` record in the signer's own log lists up to ``MAX_RECEIPT_TARGETS`` records of
*one* other origin, all of *one* distribution, each with when the signer applied it and what
that means there (``active``: the add's items match; ``removed``: the revoke is applied and its
targets no longer match). The receipt carries exactly that distribution, so its body goes only
where its targets' bodies may go, and a receipt never mixes origins, so one origin never reads
which records of another a node holds.

Everything here is pure: the node decides when to sign (``node/federation/receipts.py``); this
module says how pending receipts are batched into bodies and when a receipt is refused against
the targets a verifier holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hashmesh.protocol.distribution import distribution_for_feedback
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.records import (
    MAX_RECEIPT_TARGETS,
    AddBody,
    Distribution,
    Head,
    ReceiptBody,
    ReceiptEntry,
    RevokeBody,
    SignedRecord,
)

# What kind of receipt each receipted record type gets; other types are never receipted.
KIND_OF_TYPE: dict[str, str] = {AddBody.TYPE: "active", RevokeBody.TYPE: "removed"}


@dataclass(frozen=True)
class Applied:
    """A record of another origin that this node applied, waiting for its receipt."""

    origin: str
    dist: Distribution
    entry: ReceiptEntry


def batch(pending: Iterable[Applied],
          max_targets: int = MAX_RECEIPT_TARGETS) -> list[tuple[Distribution, ReceiptBody]]:
    """Receipt bodies for ``pending``: one group per (target origin, distribution), in the
    order each group first appears, cut into bodies of at most ``max_targets`` targets.

    A record appears once (its first entry wins), and a body never mixes origins or
    distributions: a receipt carries its targets' one distribution (SPEC §21.2)."""
    groups: dict[tuple[str, Distribution], list[ReceiptEntry]] = {}
    seen: set[str] = set()
    for item in pending:
        if item.entry.record in seen:
            continue
        seen.add(item.entry.record)
        groups.setdefault((item.origin, item.dist), []).append(item.entry)
    bodies: list[tuple[Distribution, ReceiptBody]] = []
    size = max(1, min(max_targets, MAX_RECEIPT_TARGETS))
    for (_, dist), entries in groups.items():
        for start in range(0, len(entries), size):
            bodies.append((dist, ReceiptBody(tuple(entries[start:start + size]))))
    return bodies


def check_receipt(receipt: Head, body: ReceiptBody, held: Mapping[str, Head],
                  path: str = "record", v1_group_ids: Mapping[str, str] | None = None) -> None:
    """Raise ``SchemaError`` if the receipt contradicts a target that the verifier holds.

    ``held`` maps target record ids to the heads the verifier holds (a stub's head is
    enough); targets not in it are not judged here (they may not have arrived yet: state is a
    function of the set of records, not of their order). Against each held target: it is of
    another origin than the receipt's signer, of the same origin as every other held target,
    its type fits the entry's ``kind``, and the receipt carries the target's distribution.
    """
    target_origin: str | None = None
    for index, entry in enumerate(body.targets):
        head = held.get(entry.record)
        if head is None:
            continue
        at = f"{path}.body.targets[{index}]"
        if head.origin == receipt.origin:
            raise SchemaError("a node does not receipt its own records", f"{at}.record")
        if target_origin is not None and head.origin != target_origin:
            raise SchemaError(f"one receipt covers one origin's records; this target is of "
                              f"{head.origin}, an earlier one of {target_origin}",
                              f"{at}.record")
        target_origin = head.origin
        kind = KIND_OF_TYPE.get(head.type)
        if kind is None:
            raise SchemaError(f"a {head.type} record is never receipted", f"{at}.record")
        if entry.kind != kind:
            raise SchemaError(f"a receipt of a {head.type} record has kind {kind!r}, not "
                              f"{entry.kind!r}", f"{at}.kind")
        expected = distribution_for_feedback(SignedRecord.assemble(head, None, bytes(64)),
                                             v1_group_ids)
        if receipt.dist != expected:
            raise SchemaError(f"a receipt must carry its targets' distribution "
                              f"{expected.to_json()}, got {receipt.dist.to_json()}",
                              f"{path}.head.dist")
