"""A log written under protocol v1 stays readable and continues in v2 (SPEC §15.2).

The store holds the exact v1 bytes of the committed v1 vectors (a chain of every record
type, ending with a v1 ``key_revoke``); the origin then signs its next record, which is v2
and links to the last v1 record. Nothing is re-signed or re-encoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hashmesh.protocol
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.errors import KeyRevokedError
from hashmesh.protocol.log import LogHead, check_next
from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.signing import KeyRing, verify
from tests.protocol.builders import ROOT, SIGNER, add_body, pdq_hex

V1 = json.loads((Path(hashmesh.protocol.__file__).parent / "vectors" / "records_v1.json")
                .read_text(encoding="utf-8"))


def v1_log() -> list[SignedRecord]:
    """The v1 vector chain, verified record by record as a v2 node verifies any log."""
    ring, head, records = KeyRing(ROOT.id), None, []
    for vector in V1["vectors"]:
        record = SignedRecord.from_bytes(vector["record"].encode("utf-8"))
        verify(record, ring)
        check_next(head, record)
        ring.apply(record)
        head = LogHead.of(record)
        records.append(record)
    return records


def test_a_v1_log_stays_as_stored_and_continues_with_v2_records(tmp_path: Path) -> None:
    old = v1_log()
    assert {r.head.v for r in old} == {1}
    store = Store(tmp_path / "store.db")
    try:
        store.ingest(old, source="import")
        for record in old:
            assert store.record_bytes(record.id) == record.raw  # exact v1 bytes
        ring = store.keyring(ROOT.id)
        with pytest.raises(KeyRevokedError, match="last legitimate seq 7"):
            ring.check(SIGNER.id, 8)  # the v1 key_revoke at seq 8 counts as last_seq 7
        ring.check(SIGNER.id, 7)
        assert store.item_entries(old[2].id)  # v1 items are indexed as stored

        record, _ = store.append_local(signer=ROOT, origin=ROOT.id,
                                       body=add_body(pdq_hex(17)), ts=old[-1].head.ts + 1)
        assert (record.head.v, record.head.seq, record.head.prev) == (2, 9, old[-1].id)
        assert record.body is not None and record.body.salt is not None  # type: ignore[union-attr]
        verify(record, ring)
        assert [r for r in store.all_records()][:8] == [r.raw for r in old]
    finally:
        store.close()
