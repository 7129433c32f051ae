"""Feedback inherits its target's distribution; salts keep withheld bodies unguessable."""

from __future__ import annotations

import hashlib

import pytest

from hashmesh.protocol import canonical
from hashmesh.protocol.distribution import (
    check_feedback_distribution,
    distribution_for_feedback,
)
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.records import (
    AddBody,
    Distribution,
    FeedbackBody,
    Target,
    new_group_id,
    new_salt,
)
from hashmesh.protocol.signing import sign_record
from tests.protocol.builders import ORIGIN, PDQ, SIGNER, STRANGER, T0, Chain, add_body

GROUP = "0123456789abcdef0123456789abcdef"
GROUP_SCOPED = Distribution("group", GROUP, ("IE",))


def target_record(dist: Distribution = GROUP_SCOPED) -> Chain:
    chain = Chain()
    chain.add(add_body(PDQ[0]), dist=dist)
    return chain


def feedback_on(target_id: str, dist: Distribution) -> bytes:
    return sign_record(signer=STRANGER, origin=STRANGER.id, seq=1, prev=None, ts=T0,
                       body=FeedbackBody(Target(target_id, 0), "confirmed", "a note"),
                       dist=dist).raw


@pytest.mark.parametrize("dist", [GROUP_SCOPED, Distribution("peers"), Distribution(),
                                  Distribution("all", None, ("NL",))],
                         ids=["group", "peers", "all", "jurisdiction"])
def test_feedback_takes_its_targets_distribution_from_the_record_or_its_stub(
        dist: Distribution) -> None:
    target = target_record(dist).records[0]
    assert distribution_for_feedback(target) == dist
    assert distribution_for_feedback(target.stub()) == dist


def test_feedback_with_another_distribution_than_its_target_is_refused() -> None:
    from hashmesh.protocol.records import SignedRecord

    target = target_record().records[0]
    leaky = SignedRecord.from_bytes(feedback_on(target.id, Distribution()))
    with pytest.raises(SchemaError) as info:
        check_feedback_distribution(leaky, target.stub())
    assert info.value.path == "record.head.dist"
    fitting = SignedRecord.from_bytes(feedback_on(target.id, distribution_for_feedback(target)))
    check_feedback_distribution(fitting, target.stub())


def test_same_content_gets_a_different_digest_every_time_it_is_signed() -> None:
    """The digest in a stub no longer confirms a guessed body (issue 17, part 4)."""
    body = add_body(PDQ[0])
    guess = hashlib.sha256(canonical.encode({"items": [i.to_json() for i in body.items]}))
    first, second = AddBody(body.items), AddBody(body.items)
    assert first.salt != second.salt
    records = [sign_record(signer=SIGNER, origin=ORIGIN, seq=2, prev="00" * 32, ts=T0, body=b,
                           dist=GROUP_SCOPED) for b in (first, second)]
    digests = {r.head.digest for r in records}
    assert len(digests) == 2 and guess.hexdigest() not in digests


def test_fresh_salts_and_group_ids_have_their_wire_form() -> None:
    salts = {new_salt() for _ in range(100)}
    assert len(salts) == 100
    for salt in salts:
        assert AddBody.from_json({"items": [add_body().items[0].to_json()], "salt": salt},
                                 "body").salt == salt
    group = new_group_id()
    assert Distribution.from_json({"scope": "group", "group": group}, "dist").group == group
    assert len(group) == 32 and group != new_group_id()


def test_feedback_on_a_v1_group_record_needs_the_groups_id() -> None:
    """A v1 group name cannot ride in a v2 record: the node maps it (its [groups] alias) or
    refuses, never widens the scope."""
    v1_target = sign_record(signer=SIGNER, origin=ORIGIN, seq=2, prev="00" * 32, ts=T0,
                            body=AddBody(add_body().items, None),
                            dist=Distribution("group", "eu-helplines", ("IE",)), version=1)
    with pytest.raises(SchemaError, match="no group id"):
        distribution_for_feedback(v1_target)
    mapped = distribution_for_feedback(v1_target.stub(), {"eu-helplines": GROUP})
    assert mapped == GROUP_SCOPED
    assert distribution_for_feedback(target_record(Distribution("peers")).records[0],
                                     {}) == Distribution("peers")
