"""What a node applies from a frozen origin's records read outside its chain (SPEC §11.2)."""

from __future__ import annotations

import pytest

from hashmesh.protocol.errors import KeyRevokedError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.freeze import detached_action, implicated_keys
from hashmesh.protocol.log import detect_equivocation
from hashmesh.protocol.records import Distribution, KeyRevokeBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, sign_record
from tests.protocol.builders import (
    ORIGIN,
    PDQ,
    ROOT,
    ROTATED,
    SIGNER,
    T0,
    Chain,
    add_body,
    key_body,
    revoke_body,
)


def frozen() -> tuple[Chain, Evidence]:
    """'signing' and 'rotated' authorised; 'signing' adds at seq 3, then forks seq 4."""
    chain = Chain()
    chain.authorise(SIGNER)                               # 1
    chain.authorise(ROTATED)                              # 2
    chain.add(add_body(PDQ[0]), SIGNER)                   # 3
    one = chain.add(add_body(PDQ[1]), SIGNER)             # 4, the node's branch
    two = sign_record(signer=SIGNER, origin=ORIGIN, seq=4, prev=chain.records[2].id,
                      ts=T0 + 9000, body=add_body(PDQ[2]))
    evidence = detect_equivocation(one, two, chain.records)
    assert evidence is not None
    return chain, evidence


def detached(chain: Chain, body: object, signer: object, seq: int = 5) -> SignedRecord:
    """A record of the frozen origin above the freeze, as a peer serves it."""
    return sign_record(signer=signer, origin=ORIGIN, seq=seq,  # type: ignore[arg-type]
                       prev=chain.records[-1].id, ts=T0 + 10**6, body=body)  # type: ignore[arg-type]


def ring(chain: Chain) -> KeyRing:
    return KeyRing.from_records(ORIGIN, chain.records)


def test_withdrawal_by_a_key_not_in_the_fork_is_applied_while_frozen() -> None:
    chain, evidence = frozen()
    withdrawal = detached(chain, revoke_body(chain.records[2].id), ROTATED)
    assert detached_action(withdrawal, ring(chain), [evidence]) == "apply"


def test_withdrawal_by_the_root_key_is_applied_while_frozen() -> None:
    chain, evidence = frozen()
    withdrawal = detached(chain, revoke_body(chain.records[2].id), ROOT)
    assert detached_action(withdrawal, ring(chain), [evidence]) == "apply"


def test_withdrawal_by_the_forking_key_is_held() -> None:
    """It may be a thief's forged withdrawal: the operator decides."""
    chain, evidence = frozen()
    assert implicated_keys([evidence]) == {SIGNER.id}
    withdrawal = detached(chain, revoke_body(chain.records[2].id), SIGNER)
    assert detached_action(withdrawal, ring(chain), [evidence]) == "hold"


def test_key_revoke_is_applied_and_then_the_leaked_key_counts_for_nothing() -> None:
    chain, evidence = frozen()
    key_revoke = detached(chain, KeyRevokeBody(SIGNER.id, last_seq=3), ROOT)
    keys = ring(chain)
    assert detached_action(key_revoke, keys, [evidence]) == "apply"
    keys.apply(key_revoke)
    late = detached(chain, revoke_body(chain.records[2].id), SIGNER, seq=6)
    with pytest.raises(KeyRevokedError):
        detached_action(late, keys, [evidence])
    with pytest.raises(KeyRevokedError):  # and the fork itself no longer freezes
        evidence.check_against(keys)


@pytest.mark.parametrize("make", [
    lambda chain: add_body(PDQ[3]),
    lambda chain: key_body(ROTATED),
], ids=["add", "key"])
def test_adds_and_grants_from_a_frozen_origin_are_held(make: object) -> None:
    chain, evidence = frozen()
    body = make(chain)  # type: ignore[operator]
    signer = ROOT if body.TYPE == "key" else ROTATED
    record = detached(chain, body, signer)
    assert detached_action(record, ring(chain), [evidence]) == "hold"
    assert detached_action(record.stub(), ring(chain), [evidence]) == "hold"


def test_group_scoped_add_stub_is_held_not_applied() -> None:
    chain, evidence = frozen()
    record = sign_record(signer=ROTATED, origin=ORIGIN, seq=5, prev=chain.records[-1].id,
                         ts=T0 + 10**6, body=add_body(PDQ[3]),
                         dist=Distribution("group", "0123456789abcdef0123456789abcdef"))
    assert detached_action(record.stub(), ring(chain), [evidence]) == "hold"
