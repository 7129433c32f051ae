"""The committed receipt vectors (``protocol/vectors/receipts.json``, SPEC §21): reproduced or
refused exactly, using only what the file says, and never drifting from the generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import hashmesh.protocol
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.log import LogHead, check_next
from hashmesh.protocol.receipts import check_receipt
from hashmesh.protocol.records import MAX_RECORD_BYTES, ReceiptBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, verify
from tests.protocol import generate_receipt_vectors

VECTORS = json.loads((Path(hashmesh.protocol.__file__).parent / "vectors" / "receipts.json")
                     .read_text(encoding="utf-8"))


def origin_heads() -> dict[str, Any]:
    ring = KeyRing(VECTORS["keys"]["origin"])
    head: LogHead | None = None
    held = {}
    for line in VECTORS["origin_log"]:
        record = SignedRecord.from_bytes(line.encode())
        verify(record, ring)
        check_next(head, record)
        ring.apply(record)
        head = LogHead.of(record)
        held[record.id] = record.head
    return held


def test_the_vectors_are_what_the_generator_writes() -> None:
    assert generate_receipt_vectors.render() == (
        Path(hashmesh.protocol.__file__).parent / "vectors" / "receipts.json"
    ).read_text(encoding="utf-8")


def test_valid_receipts_form_a_chain_and_pass_against_their_targets() -> None:
    held = origin_heads()
    ring = KeyRing(VECTORS["keys"]["node"])
    head: LogHead | None = None
    for vector in VECTORS["valid"]:
        record = SignedRecord.from_bytes(vector["record"].encode())
        verify(record, ring)
        check_next(head, record)
        head = LogHead.of(record)
        assert record.id == vector["id"]
        assert canonical.encode(record.to_json()["body"]).decode() == vector["body_canonical"]
        assert record.head_bytes.decode() == vector["head_canonical"]
        assert record.stub().raw.decode() == vector["stub"]
        assert isinstance(record.body, ReceiptBody)
        check_receipt(record.head, record.body, held)
        for entry in record.body.targets:
            assert entry.record in held and entry.applied <= record.head.ts


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_receipts_are_refused_with_code_and_path(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        record = SignedRecord.from_bytes(vector["record"].encode())
        verify(record, KeyRing(PublicKey.from_id(VECTORS["keys"]["node"]).id))
    assert (caught.value.code, caught.value.path) == (vector["expect"]["code"],
                                                      vector["expect"]["path"])


@pytest.mark.parametrize("vector", VECTORS["against_targets"], ids=lambda v: v["name"])
def test_receipts_contradicting_held_targets_are_refused(vector: dict[str, Any]) -> None:
    record = SignedRecord.from_bytes(vector["record"].encode())
    assert isinstance(record.body, ReceiptBody)
    check_receipt(record.head, record.body, {})  # nothing held: nothing to judge yet
    with pytest.raises(ProtocolError) as caught:
        check_receipt(record.head, record.body, origin_heads())
    assert (caught.value.code, caught.value.path) == (vector["expect"]["code"],
                                                      vector["expect"]["path"])


def test_a_full_receipt_with_the_largest_times_fits_one_record() -> None:
    """MAX_RECEIPT_TARGETS is chosen so that the largest receipt stays under the record
    limit: 512 entries with 16-digit times and a group-scoped head with 32 jurisdictions."""
    from hashmesh.protocol.keys import SigningKey
    from hashmesh.protocol.records import (
        MAX_RECEIPT_TARGETS,
        Distribution,
        ReceiptEntry,
    )
    from hashmesh.protocol.signing import sign_record
    biggest = 9_007_199_254_740_991
    body = ReceiptBody(tuple(ReceiptEntry(f"{i:064x}", "removed", biggest)
                             for i in range(MAX_RECEIPT_TARGETS)))
    dist = Distribution("group", "ab" * 16, tuple(f"{a}{b}" for a in "ABCD" for b in "ABCDEFGH"))
    key = SigningKey(bytes(range(32)))
    record = sign_record(signer=key, origin=key.id, seq=2**52, prev="cd" * 32, ts=biggest,
                         body=body, dist=dist)
    assert len(record.raw) <= MAX_RECORD_BYTES
