"""Equivocation evidence: two signed records at one (origin, seq), checkable offline."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from hashmesh.protocol.errors import KeyRevokedError, ProtocolError
from hashmesh.protocol.evidence import EquivocationError, Evidence
from hashmesh.protocol.keys import b64url_encode
from hashmesh.protocol.log import detect_equivocation, raise_equivocation
from hashmesh.protocol.records import KeyRevokeBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, sign_record
from tests.protocol.builders import (
    ORIGIN,
    PDQ,
    ROOT,
    ROTATED,
    SIGNER,
    STRANGER,
    T0,
    Chain,
    add_body,
    key_revoke_body,
)


def fork(chain: Chain, signer: Any = SIGNER, other: Any = None) -> tuple[SignedRecord,
                                                                          SignedRecord]:
    """Two different records that both extend ``chain`` at the next seq."""
    assert chain.head is not None
    seq, prev = chain.head.seq + 1, chain.head.id
    one = sign_record(signer=signer, origin=chain.origin, seq=seq, prev=prev, ts=T0 + 10**6,
                      body=add_body(PDQ[1]))
    two = sign_record(signer=other or signer, origin=chain.origin, seq=seq, prev=prev,
                      ts=T0 + 10**6, body=add_body(PDQ[2]))
    return one, two


def signer_chain() -> Chain:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.add(add_body(PDQ[0]), SIGNER)
    return chain


def good_evidence() -> tuple[Chain, Evidence]:
    chain = signer_chain()
    one, two = fork(chain)
    evidence = detect_equivocation(one, two, chain.records)
    assert evidence is not None
    return chain, evidence


def test_two_records_at_one_seq_give_evidence_that_verifies_offline() -> None:
    _, evidence = good_evidence()
    wire = json.loads(json.dumps(evidence.to_json()))
    parsed = Evidence.from_json(wire)  # knows nothing but the JSON
    assert parsed == evidence
    assert (parsed.origin, parsed.seq) == (ORIGIN, 3)


def test_evidence_holds_sorted_stubs_and_only_the_needed_key_record() -> None:
    chain, evidence = good_evidence()
    assert evidence.first.is_stub and evidence.second.is_stub
    assert evidence.first.id < evidence.second.id
    assert evidence.key_records == (chain.records[0],)


def test_evidence_is_the_same_whichever_record_was_seen_first() -> None:
    chain = signer_chain()
    one, two = fork(chain)
    assert detect_equivocation(one, two, chain.records) == detect_equivocation(
        two, one, chain.records)


def test_root_signed_equivocation_needs_no_key_records() -> None:
    chain = Chain()
    chain.add(add_body(PDQ[0]))
    one, two = fork(chain, ROOT)
    evidence = detect_equivocation(one, two, chain.records)
    assert evidence is not None and evidence.key_records == ()
    evidence.verify()


def test_evidence_with_two_signing_keys_carries_both_grants() -> None:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.authorise(ROTATED)
    one, two = fork(chain, SIGNER, ROTATED)
    evidence = detect_equivocation(one, two, chain.records)
    assert evidence is not None
    assert len(evidence.key_records) == 2
    Evidence.from_json(evidence.to_json())


def test_evidence_uses_the_latest_grant_of_a_key_authorised_twice() -> None:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.add(key_revoke_body(SIGNER))
    chain.authorise(SIGNER)
    foreign = Chain(STRANGER).authorise(SIGNER)
    one, two = fork(chain)
    evidence = detect_equivocation(one, two, [*chain.records, foreign])
    assert evidence is not None
    assert evidence.key_records == (chain.records[2],)
    Evidence.from_json(evidence.to_json())


def test_evidence_ignores_key_records_of_other_origins() -> None:
    chain = Chain()
    chain.authorise(SIGNER)                          # our grant, seq 1
    chain.add(add_body(PDQ[0]))
    chain.add(add_body(PDQ[1]))
    foreign = Chain(STRANGER)
    foreign.add(add_body(PDQ[0]))
    foreign_grant = foreign.authorise(SIGNER)        # a later-looking grant, seq 2, not ours
    one, two = fork(chain)
    evidence = detect_equivocation(one, two, [foreign_grant, *chain.records])
    assert evidence is not None
    assert evidence.key_records == (chain.records[0],)
    evidence.verify()


@pytest.mark.parametrize("pair", ["same", "other_seq", "other_origin"])
def test_no_evidence_without_a_conflict(pair: str) -> None:
    chain = signer_chain()
    record = chain.records[1]
    others = {"same": record, "other_seq": chain.records[0],
              "other_origin": sign_record(signer=STRANGER, origin=STRANGER.id, seq=2,
                                          prev="00" * 32, ts=T0, body=add_body())}
    assert detect_equivocation(record, others[pair], chain.records) is None
    raise_equivocation(record, others[pair], chain.records)


def test_raise_equivocation_carries_the_evidence() -> None:
    chain = signer_chain()
    one, two = fork(chain)
    with pytest.raises(EquivocationError) as info:
        raise_equivocation(one, two, chain.records)
    assert info.value.code == "EQUIVOCATION"
    assert info.value.path == "record.head.seq"
    assert info.value.evidence == detect_equivocation(one, two, chain.records)


def _flip_sig(record: dict[str, Any]) -> None:
    raw = bytearray(base64.urlsafe_b64decode(record["sig"] + "=="))
    raw[10] ^= 0x80
    record["sig"] = b64url_encode(bytes(raw))


def _full_first(value: dict[str, Any]) -> None:
    chain = signer_chain()
    one, two = fork(chain)
    value["first"] = min((one, two), key=lambda r: r.id).to_json()


def _late_grant(value: dict[str, Any]) -> None:
    chain = signer_chain()
    one, _ = fork(chain)
    late = Chain()
    for _ in range(one.head.seq + 1):
        late.add(add_body(PDQ[0]))
    value["key_records"] = [late.authorise(SIGNER).to_json()]


def _grant_for_other_key(value: dict[str, Any]) -> None:
    value["key_records"] = [Chain().authorise(ROTATED).to_json()]


def _edit_head(value: dict[str, Any]) -> None:
    """Change the second record's ts, by an amount that keeps the two ids sorted (so that
    only the signature can fail)."""
    first_id = SignedRecord.from_json(value["first"]).id
    ts = value["second"]["head"]["ts"]
    for step in range(1, 100):
        value["second"]["head"]["ts"] = ts + step
        if SignedRecord.from_json(value["second"]).id > first_id:
            return
    raise AssertionError("no edit keeps the ids sorted")


TAMPERED: list[tuple[str, Callable[[dict[str, Any]], object], str, str]] = [
    ("swapped", lambda v: v.update(first=v["second"], second=v["first"]), "BAD_EVIDENCE",
     "evidence"),
    ("duplicated", lambda v: v.update(second=v["first"]), "BAD_EVIDENCE", "evidence"),
    ("signature", lambda v: _flip_sig(v["second"]), "BAD_EVIDENCE", "evidence.second.sig"),
    ("head", _edit_head, "BAD_EVIDENCE", "evidence.second.sig"),
    ("body", _full_first, "BAD_EVIDENCE", "evidence.first.body"),
    ("no_grant", lambda v: v.update(key_records=[]), "BAD_EVIDENCE",
     "evidence.first.head.key"),
    ("late_grant", _late_grant, "BAD_EVIDENCE", "evidence.first.head.key"),
    ("other_key_grant", _grant_for_other_key, "BAD_EVIDENCE", "evidence.first.head.key"),
    ("key_record_signature", lambda v: _flip_sig(v["key_records"][0]), "BAD_EVIDENCE",
     "evidence.key_records[0].sig"),
    ("kind", lambda v: v.update(kind="fork"), "BAD_EVIDENCE", "evidence.kind"),
    ("extra_field", lambda v: v.update(by="me"), "UNKNOWN_FIELD", "evidence.by"),
    ("too_many_grants", lambda v: v.update(key_records=v["key_records"] * 3), "BAD_SCHEMA",
     "evidence.key_records"),
]


@pytest.mark.parametrize(("edit", "code", "path"), [t[1:] for t in TAMPERED],
                         ids=[t[0] for t in TAMPERED])
def test_evidence_verify_rejects_tampered_evidence(
        edit: Callable[[dict[str, Any]], object], code: str, path: str) -> None:
    _, evidence = good_evidence()
    value = copy.deepcopy(evidence.to_json())
    Evidence.from_json(value)
    edit(value)
    with pytest.raises(ProtocolError) as info:
        Evidence.from_json(value)
    assert (info.value.code, info.value.path) == (code, path)


# -- evidence judged against the verifier's key ring (SPEC §11.1) ------------------------------

def leaked_chain() -> Chain:
    """'signing' granted (1), signs (2); the root signs (3) and revokes it, last_seq 2 (4)."""
    chain = signer_chain()
    chain.add(add_body(PDQ[3]))
    chain.add(KeyRevokeBody(SIGNER.id, last_seq=2))
    return chain


def forged_at(chain: Chain, seq: int) -> SignedRecord:
    """A record a thief of 'signing' makes at ``seq`` of ``chain``'s origin."""
    return sign_record(signer=SIGNER, origin=chain.origin, seq=seq,
                       prev=chain.records[seq - 2].id, ts=T0 + 10**6, body=add_body(f"{99:064x}"))


def test_evidence_with_a_still_valid_key_is_grounds_to_freeze() -> None:
    chain, evidence = good_evidence()
    evidence.check_against(KeyRing.from_records(ORIGIN, chain.records))
    Evidence.from_json(evidence.to_json(), keyring=KeyRing.from_records(ORIGIN, chain.records))


def test_evidence_signed_past_a_revoked_keys_last_seq_is_refused() -> None:
    chain = leaked_chain()
    forged = forged_at(chain, 3)  # seq 3 was signed by the root key; 'signing' ended at 2
    evidence = detect_equivocation(chain.records[2], forged, chain.records)
    assert evidence is not None
    evidence.verify()  # offline, it proves the keys signed both ...
    name = "first" if evidence.first.id == forged.id else "second"
    with pytest.raises(KeyRevokedError) as info:  # ... but the ring says: a forgery
        evidence.check_against(KeyRing.from_records(ORIGIN, chain.records))
    assert info.value.path == f"evidence.{name}.head.key"


def test_evidence_of_a_key_withdrawn_since_is_refused_inside_its_window() -> None:
    chain = leaked_chain()
    forged = forged_at(chain, 2)  # seq 2 is inside the window: only the revocation tells
    evidence = detect_equivocation(chain.records[1], forged, chain.records)
    assert evidence is not None
    evidence.check_against(KeyRing.from_records(ORIGIN, chain.records[:3]))  # before: freeze
    with pytest.raises(KeyRevokedError, match="peer fault, not equivocation") as info:
        Evidence.from_json(evidence.to_json(),
                           keyring=KeyRing.from_records(ORIGIN, chain.records))
    assert info.value.path == "evidence.first.head.key"


def test_root_signed_conflict_is_grounds_to_freeze_whatever_the_ring_says() -> None:
    chain = leaked_chain()
    one, two = fork(chain, ROOT)
    evidence = detect_equivocation(one, two)
    assert evidence is not None
    evidence.check_against(KeyRing.from_records(ORIGIN, chain.records))


def test_evidence_checked_against_another_origins_ring_is_refused() -> None:
    _, evidence = good_evidence()
    with pytest.raises(ProtocolError, match="key ring of"):
        evidence.check_against(KeyRing(STRANGER.id))
