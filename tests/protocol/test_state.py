"""Current state: adds minus revokes, expiry and feedback, independent of arrival order."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.state import State
from tests.protocol.builders import (
    PROPERTY,
    ROOT,
    SIGNER,
    STRANGER,
    T0,
    Chain,
    add_body,
    feedback_body,
    pdq_hex,
    revoke_body,
)

NOW = T0 + 10**9


def refs(records: list[SignedRecord], now_ms: int = NOW) -> list[str]:
    return [item.ref for item in State().apply_all(records).active(now_ms)]


def test_add_makes_each_item_active_under_its_ref() -> None:
    chain = Chain()
    record = chain.add(add_body(pdq_hex(1), pdq_hex(2)))
    active = list(State().apply_all(chain.records).active(NOW))
    assert [a.ref for a in active] == [f"{record.id}/0", f"{record.id}/1"]
    assert active[1].item.hashes[0].value == pdq_hex(2)
    assert (active[1].origin, active[1].record, active[1].index) == (chain.origin, record.id, 1)


def test_revoke_cancels_a_whole_record_or_a_single_item() -> None:
    chain = Chain()
    a = chain.add(add_body(pdq_hex(1), pdq_hex(2)))
    b = chain.add(add_body(pdq_hex(3)))
    chain.add(revoke_body(f"{a.id}/1", b.id))
    assert refs(chain.records) == [f"{a.id}/0"]


def test_revoke_arriving_before_its_add_still_cancels_it() -> None:
    chain = Chain()
    a = chain.add(add_body(pdq_hex(1)))
    revoke = chain.add(revoke_body(a.id))
    assert refs([revoke, a]) == []


def test_revoke_by_another_origin_has_no_effect() -> None:
    ours, theirs = Chain(), Chain(STRANGER)
    a = ours.add(add_body(pdq_hex(1)))
    theirs.add(revoke_body(a.id, f"{a.id}/0"))
    assert refs(ours.records + theirs.records) == [f"{a.id}/0"]


def test_item_is_inactive_from_its_expiry_time() -> None:
    chain = Chain()
    a = chain.add(add_body(pdq_hex(1), expires=NOW))
    assert refs(chain.records, NOW - 1) == [f"{a.id}/0"]
    assert refs(chain.records, NOW) == []


def test_stub_changes_nothing() -> None:
    chain = Chain()
    a = chain.add(add_body(pdq_hex(1)))
    revoke = chain.add(revoke_body(a.id))
    assert refs([a, revoke.stub()]) == [f"{a.id}/0"]
    assert refs([a.stub()]) == []


def test_feedback_keeps_the_latest_verdict_of_each_origin() -> None:
    ours, helpline, platform = Chain(), Chain(SIGNER), Chain(STRANGER)
    a = ours.add(add_body(pdq_hex(1)))
    ref = f"{a.id}/0"
    helpline.add(feedback_body(ref, "disputed"))
    helpline.add(feedback_body(ref, "confirmed"))
    platform.add(feedback_body(ref, "actioned"))
    platform.add(feedback_body(a.id, "not_ncii"))
    for order in (helpline.records + platform.records,
                  list(reversed(helpline.records + platform.records))):
        state = State().apply_all([a, *order])
        assert state.feedback(ref) == Counter({"confirmed": 1, "actioned": 1})
        assert state.feedback(a.id) == Counter({"not_ncii": 1})


# -- property: the state is a function of the set of records -----------------------------------

ORIGINS = (ROOT, SIGNER, STRANGER)  # three independent origins (each key as its own root)

# One operation: (origin index, kind, hash number, target pick, item pick, expiry flag)
operation = st.tuples(st.integers(0, 2), st.sampled_from(["add", "add", "revoke", "feedback"]),
                      st.integers(0, 50), st.integers(0, 100), st.integers(0, 2), st.booleans())


def build(plan: list[tuple[int, str, int, int, int, bool]]) -> tuple[list[SignedRecord],
                                                                      set[str]]:
    """Sign the plan's records and compute the expected active refs by a direct model."""
    chains = [Chain(key) for key in ORIGINS]
    adds: list[tuple[str, SignedRecord]] = []   # (origin, record)
    for origin_index, kind, number, pick, item, expired in plan:
        chain = chains[origin_index]
        if kind == "add" or not adds:
            values = [pdq_hex(number * 3 + i) for i in range(item + 1)]
            expires = T0 if expired else NOW + 1
            adds.append((chain.origin, chain.add(add_body(*values, expires=expires))))
            continue
        _, target = adds[pick % len(adds)]  # possibly another origin's record
        ref = target.id if item == 0 else f"{target.id}/{item - 1}"
        if kind == "revoke":
            chain.add(revoke_body(ref))
        else:
            chain.add(feedback_body(ref, "confirmed" if expired else "disputed"))
    records = [r for chain in chains for r in chain.records]
    revoked = {(r.head.origin, t.ref) for r in records if r.head.type == "revoke"
               for t in r.body.targets}  # type: ignore[union-attr]
    expected = set()
    for origin, record in adds:
        for index, entry in enumerate(record.body.items):  # type: ignore[union-attr]
            ref = f"{record.id}/{index}"
            if ((origin, record.id) in revoked or (origin, ref) in revoked
                    or entry.expires is not None and entry.expires <= NOW):
                continue
            expected.add(ref)
    return records, expected


@PROPERTY
@given(st.lists(operation, min_size=1, max_size=14), st.randoms(use_true_random=False))
def test_state_is_adds_minus_revokes_in_any_arrival_order(
        plan: list[tuple[int, str, int, int, int, bool]], random: st.Random) -> None:
    records, expected = build(plan)
    shuffled = list(records)
    random.shuffle(shuffled)
    in_order, any_order = State().apply_all(records), State().apply_all(shuffled)
    assert {a.ref for a in in_order.active(NOW)} == expected
    assert list(any_order.active(NOW)) == list(in_order.active(NOW))
    assert any_order.verdicts == in_order.verdicts
    # Receiving a record twice, or as a stub as well, changes nothing either.
    again = State().apply_all(shuffled + [r.stub() for r in records] + records[:3])
    assert list(again.active(NOW)) == list(in_order.active(NOW))
