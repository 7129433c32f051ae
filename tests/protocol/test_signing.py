"""Signing and verification: key validity in seq numbers, then the signature over the head."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol.errors import (
    BadSignatureError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    ProtocolError,
    SchemaError,
)
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.records import (
    DOMAIN,
    AddBody,
    Distribution,
    Head,
    KeyRevokeBody,
    SignedRecord,
    signed_message,
)
from hashmesh.protocol.signing import (
    KeyGrant,
    KeyRing,
    sign_record,
    signature_verifies,
    verify,
    verify_bytes,
)
from tests.protocol.builders import (
    ORIGIN,
    PDQ,
    PROPERTY,
    ROOT,
    ROTATED,
    SIGNER,
    STRANGER,
    T0,
    Chain,
    add_body,
    feedback_body,
    key_body,
    key_revoke_body,
    keyring_with,
    resign,
    revoke_body,
)


def ring_of(chain: Chain) -> KeyRing:
    """The key ring a verifier holds after the whole chain."""
    ring = KeyRing(chain.origin)
    for record in chain.records:
        ring.apply(record)
    return ring


def sign_at(seq: int, signer: Any = SIGNER, **head: Any) -> SignedRecord:
    return sign_record(signer=signer, origin=head.get("origin", ORIGIN), seq=seq,
                       prev=None if seq == 1 else "00" * 32, ts=T0, body=add_body())


def test_signed_record_verifies_under_the_authorised_key() -> None:
    record = sign_at(2)
    verify(record, keyring_with(SIGNER))
    assert verify_bytes(record.raw, keyring_with(SIGNER)) == record


def test_root_key_may_always_sign() -> None:
    verify(sign_at(5, ROOT), KeyRing(ORIGIN))


def test_signature_covers_domain_prefix_and_canonical_head_only() -> None:
    record = sign_at(2)
    assert signed_message(record.head_bytes) == DOMAIN + record.head_bytes
    assert SIGNER.public.verify(DOMAIN + record.head_bytes, record.sig)
    assert not SIGNER.public.verify(record.head_bytes, record.sig)


def test_stub_verifies_with_the_same_signature() -> None:
    stub = sign_at(2).stub()
    verify(SignedRecord.from_bytes(stub.raw), keyring_with(SIGNER))


def test_verify_rejects_forged_signature() -> None:
    value = sign_at(2).to_json()
    forged = resign(value, STRANGER)  # head.key still names SIGNER
    with pytest.raises(BadSignatureError) as info:
        verify_bytes(forged, keyring_with(SIGNER))
    assert info.value.path == "record.sig"


def test_verify_rejects_head_changed_after_signing() -> None:
    record = sign_at(2)
    changed = record.raw.replace(b'"ts":1700000000000', b'"ts":1700000000001')
    with pytest.raises(BadSignatureError):
        verify_bytes(changed, keyring_with(SIGNER))


def test_verify_rejects_record_signed_by_a_key_the_origin_never_authorised() -> None:
    record = sign_at(2, STRANGER)  # validly signed, but by someone else's key
    with pytest.raises(KeyNotAuthorisedError) as info:
        verify(record, keyring_with(SIGNER))
    assert info.value.path == "record.head.key"
    assert STRANGER.id in info.value.reason


def test_key_check_comes_before_the_signature_check() -> None:
    value = sign_at(2, STRANGER).to_json()
    with pytest.raises(KeyNotAuthorisedError):
        verify_bytes(resign(value, SIGNER), keyring_with(SIGNER))


def test_a_verdict_computed_ahead_gives_the_same_answers_in_the_same_order() -> None:
    """``verify(..., signature_ok=signature_verifies(record))``, as a receiver checking a
    page's signatures in parallel does: the key check still comes first, and a bad signature
    is reported where ``verify`` reports it."""
    good = sign_at(2)
    forged = SignedRecord.from_bytes(resign(good.to_json(), STRANGER))
    stranger = SignedRecord.from_bytes(resign(sign_at(2, STRANGER).to_json(), SIGNER))
    assert signature_verifies(good) and not signature_verifies(forged)

    verify(good, keyring_with(SIGNER), signature_ok=signature_verifies(good))
    with pytest.raises(BadSignatureError) as info:
        verify(forged, keyring_with(SIGNER), signature_ok=signature_verifies(forged))
    assert info.value.path == "record.sig"
    with pytest.raises(KeyNotAuthorisedError):
        verify(stranger, keyring_with(SIGNER), signature_ok=signature_verifies(stranger))


def test_verify_rejects_record_of_another_origin_than_the_key_ring() -> None:
    record = sign_at(1, STRANGER, origin=STRANGER.id)
    with pytest.raises(KeyNotAuthorisedError) as info:
        verify(record, KeyRing(ORIGIN))
    assert info.value.path == "record.head.origin"


def test_key_is_valid_only_after_the_seq_of_its_key_record() -> None:
    chain = Chain()
    chain.add(add_body(PDQ[0]))                     # seq 1, root
    chain.authorise(SIGNER)                         # seq 2
    ring = ring_of(chain)
    for seq in (1, 2):
        with pytest.raises(KeyNotAuthorisedError, match=f"before seq {seq}"):
            ring.check(SIGNER.id, seq)
    ring.check(SIGNER.id, 3)


def test_verify_rejects_record_signed_by_revoked_key() -> None:
    chain = Chain()
    chain.authorise(SIGNER)                          # seq 1
    before = chain.add(add_body(PDQ[0]), SIGNER)     # seq 2
    chain.add(key_revoke_body(SIGNER))               # seq 3
    ring = ring_of(chain)
    after = sign_record(signer=SIGNER, origin=ORIGIN, seq=4, prev=chain.records[-1].id,
                        ts=T0 + 9000, body=add_body())
    with pytest.raises(KeyRevokedError) as info:
        verify(after, ring)
    assert info.value.path == "record.head.key"
    assert "revoked at seq 3 (last legitimate seq 2); cannot sign seq 4" in info.value.reason
    verify(before, ring)  # history signed before the revocation stays valid


def test_revoked_key_can_be_authorised_again_from_a_later_seq() -> None:
    chain = Chain()
    chain.authorise(SIGNER)                          # seq 1
    chain.add(key_revoke_body(SIGNER))               # seq 2
    chain.authorise(SIGNER)                          # seq 3
    ring = ring_of(chain)
    assert ring.grants[SIGNER.id] == KeyGrant(SIGNER.id, 3)  # the latest window
    ring.check(SIGNER.id, 4)
    assert ring.active_keys() == [SIGNER.id]


def test_key_ring_keeps_every_grant_window_of_a_key_granted_twice() -> None:
    chain = Chain()
    chain.authorise(SIGNER)                                        # seq 1
    first = chain.add(add_body(PDQ[0]), SIGNER)                    # seq 2
    chain.add(KeyRevokeBody(SIGNER.id, last_seq=2))                # seq 3
    chain.add(add_body(PDQ[1]))                                    # seq 4, root
    chain.authorise(SIGNER)                                        # seq 5
    ring = ring_of(chain)
    assert ring.windows[SIGNER.id] == (KeyGrant(SIGNER.id, 1, revoked_at=3, last_seq=2),
                                       KeyGrant(SIGNER.id, 5))
    verify(first, ring)  # the first window still holds its record
    for seq in (3, 4, 5):  # the gap, and the seq of the new grant itself
        with pytest.raises(KeyRevokedError):
            ring.check(SIGNER.id, seq)
    ring.check(SIGNER.id, 6)


def test_last_seq_takes_seqs_the_key_covered_before_its_revocation() -> None:
    """A thief of the key signs at a seq between its last legitimate record and the
    revocation: the record is invalid once the key_revoke is known (issue 17, part 3)."""
    chain = Chain()
    chain.authorise(SIGNER)                                        # seq 1
    chain.add(add_body(PDQ[0]), SIGNER)                            # seq 2
    chain.add(add_body(PDQ[1]))                                    # seq 3, root
    chain.add(KeyRevokeBody(SIGNER.id, last_seq=2))                # seq 4
    forged = sign_record(signer=SIGNER, origin=ORIGIN, seq=3, prev=chain.records[1].id,
                         ts=T0 + 3000, body=add_body(PDQ[2]))
    ring_before = KeyRing.from_records(ORIGIN, chain.records[:3])
    verify(forged, ring_before)  # before the key_revoke, seq 3 was the key's to sign
    with pytest.raises(KeyRevokedError, match="last legitimate seq 2") as info:
        verify(forged, ring_of(chain))
    assert info.value.path == "record.head.key"


def test_v1_key_revoke_counts_as_last_seq_one_below_itself() -> None:
    chain = Chain()
    chain.authorise(SIGNER)                                        # seq 1
    revoke = sign_record(signer=ROOT, origin=ORIGIN, seq=2, prev=chain.records[0].id,
                         ts=T0 + 2000, body=KeyRevokeBody(SIGNER.id), version=1)
    ring = ring_of(chain)
    ring.apply(revoke)
    assert ring.window_at(SIGNER.id, 1) is None
    with pytest.raises(KeyRevokedError, match="last legitimate seq 1"):
        ring.check(SIGNER.id, 2)  # v1 rules let the key sign seq 2, the revocation's own


def test_key_revoke_appended_without_last_seq_vouches_for_the_log_so_far() -> None:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.add(add_body(PDQ[0]), SIGNER)
    record = chain.add(key_revoke_body(SIGNER))
    assert isinstance(record.body, KeyRevokeBody) and record.body.last_seq == 2


def test_key_ring_from_records_skips_stubs_and_sorts_by_seq() -> None:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.add(key_revoke_body(SIGNER))
    grant, revoke = chain.records
    ring = KeyRing.from_records(ORIGIN, [revoke.stub(), grant])
    assert ring.active_keys() == [SIGNER.id]
    assert KeyRing.from_records(ORIGIN, [revoke, grant]).active_keys() == []


def test_rotation_keeps_both_keys_until_the_old_one_is_revoked() -> None:
    chain = Chain()
    chain.authorise(SIGNER)
    chain.authorise(ROTATED)
    assert sorted(ring_of(chain).active_keys()) == sorted([SIGNER.id, ROTATED.id])
    chain.add(key_revoke_body(SIGNER))
    assert ring_of(chain).active_keys() == [ROTATED.id]


def test_revoking_a_key_that_was_never_authorised_changes_nothing() -> None:
    chain = Chain()
    chain.add(key_revoke_body(ROTATED))
    assert ring_of(chain).grants == {}


def test_key_record_must_be_signed_by_the_root_key() -> None:
    with pytest.raises(SchemaError) as info:
        sign_record(signer=SIGNER, origin=ORIGIN, seq=2, prev="00" * 32, ts=T0,
                    body=key_body(ROTATED))
    assert info.value.path == "record.head.key"


def test_root_key_revocation_is_refused_when_signing_and_parsing() -> None:
    with pytest.raises(SchemaError, match="the root key cannot be revoked") as info:
        sign_record(signer=ROOT, origin=ORIGIN, seq=2, prev="00" * 32, ts=T0,
                    body=KeyRevokeBody(ORIGIN, last_seq=1))
    assert info.value.path == "record.body.signing_key"


def test_key_ring_refuses_to_revoke_the_root_key_even_unparsed() -> None:
    valid = sign_record(signer=ROOT, origin=ORIGIN, seq=2, prev="00" * 32, ts=T0,
                        body=KeyRevokeBody(SIGNER.id, last_seq=1))
    smuggled = SignedRecord.assemble(valid.head, KeyRevokeBody(ORIGIN, 1), valid.sig)
    with pytest.raises(SchemaError, match="the root key cannot be revoked"):
        KeyRing(ORIGIN).apply(smuggled)


def test_key_ring_refuses_key_records_of_another_origin() -> None:
    foreign = Chain(STRANGER).authorise(SIGNER)
    ring = KeyRing(ORIGIN)
    with pytest.raises(KeyNotAuthorisedError):
        ring.apply(foreign)
    assert ring.grants == {}


def test_head_serialises_prev_as_null_at_seq_one() -> None:
    head = sign_at(1, ROOT).head
    assert head.to_json()["prev"] is None
    assert Head.from_json(head.to_json(), "head") == head


# -- any single-byte change to a signed record is caught ---------------------------------------

def _records() -> list[SignedRecord]:
    chain = Chain()
    chain.authorise(SIGNER)
    every_type = [{"type": t, "value": HASH_TYPES[t].examples()[0]} for t in sorted(HASH_TYPES)]
    chain.add(AddBody.from_json({"items": [
        {"hashes": every_type, "labels": ["a", "b:c"], "list": "ncii", "tier": "victim_submitted",
         "expires": T0 * 2}], "salt": "AAAAAAAAAAAAAAAAAAAAAA"}, "body"), SIGNER,
        dist=Distribution("group", "0123456789abcdef0123456789abcdef", ("IE",)))
    added = chain.records[-1]
    chain.add(revoke_body(f"{added.id}/0", added.id), SIGNER)
    chain.add(feedback_body(f"{added.id}/0", "not_ncii"), SIGNER)
    chain.add(key_revoke_body(SIGNER))
    return [*chain.records, added.stub()]


RECORDS = _records()
RING = keyring_with(SIGNER)


def _assert_rejected(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        verify_bytes(data, RING)


@PROPERTY
@given(st.sampled_from(RECORDS), st.data())
def test_any_single_byte_substitution_fails_parse_or_verification(
        record: SignedRecord, data: st.DataObject) -> None:
    verify_bytes(record.raw, RING)
    index = data.draw(st.integers(0, len(record.raw) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != record.raw[index]), label="byte")
    _assert_rejected(record.raw[:index] + bytes([byte]) + record.raw[index + 1:])


@PROPERTY
@given(st.sampled_from(RECORDS), st.data())
def test_any_single_byte_insertion_or_deletion_fails_parse_or_verification(
        record: SignedRecord, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(record.raw) - 1), label="index")
    byte = data.draw(st.integers(0, 255), label="byte")
    _assert_rejected(record.raw[:index] + bytes([byte]) + record.raw[index:])
    _assert_rejected(record.raw[:index] + record.raw[index + 1:])


def test_every_byte_position_of_one_record_is_protected() -> None:
    record = RECORDS[2]  # the revoke: small enough to try every position exhaustively
    for index in range(len(record.raw)):
        flipped = record.raw[index] ^ 0x01
        _assert_rejected(record.raw[:index] + bytes([flipped]) + record.raw[index + 1:])
