"""The case verbs on a real node (``NodeService`` with its SQLite store and index)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator

import pytest

from hashmesh.node.cases import (
    CaseAccessError,
    CaseLimitError,
    CaseLockedError,
    CaseNotFoundError,
    CaseStateError,
)
from hashmesh.node.matching.answers import HashQuery
from hashmesh.node.service import NodeService
from hashmesh.protocol.records import Distribution, HashEntry, Item, SignedRecord, Target
from tests.conftest import NodeDir

CLIENT = "198.51.100.7"


def pdq(seed: int) -> str:
    return random.Random(seed).getrandbits(256).to_bytes(32, "big").hex()


def items(*seeds: int) -> list[Item]:
    return [Item((HashEntry("pdq", pdq(seed)),), "ncii") for seed in seeds]


def with_cases_config(node_dir: NodeDir, **values: int) -> None:
    lines = "".join(f"{key} = {value}\n" for key, value in values.items())
    node_dir.config_path.write_text(node_dir.config_path.read_text() + "\n[cases]\n" + lines)


@pytest.fixture
async def node(node_dir: NodeDir) -> AsyncIterator[NodeService]:
    with_cases_config(node_dir, pin_attempts=3, lockout_seconds=600, client_attempts=8,
                      max_items=5)
    service = await NodeService.open(node_dir.config())
    yield service
    await service.close()


async def matches(service: NodeService, seed: int) -> int:
    [result] = await service.match([HashQuery("pdq", pdq(seed))], {}, None, "test")
    return len(result["matches"])


async def audit(service: NodeService) -> list[dict]:
    await service.store.flush_audit()
    return await service.store.read(lambda s: s.audit_rows(1000))


async def test_an_opened_case_is_signed_shared_and_shows_its_status(node: NodeService) -> None:
    opened = await node.open_case(items(1, 2), Distribution(), "token:helpline")
    assert opened.state == "open" and len(opened.records) == 1
    assert await matches(node, 1) == 1

    status = await node.case_status(opened.reference, opened.pin, CLIENT)
    body = status.as_json()
    assert body["state"] == "open" and body["items"] == 2 and body["records"] == 1
    assert body["active"] == {"nodes": 0, "of": 0, "slowest_seconds": None}
    assert body["withdrawal"] is None
    words = status.plain_words()
    assert words[0].startswith("Opened ") and "with 2 items; signed and shared" in words[0]
    assert words[1:] == ["No other node is known to this one yet.",
                         "No organisation has reported back yet."]
    # typed as a person might: lower case, spaces, no hyphens
    typed = opened.reference.lower().replace("-", " ")
    assert (await node.case_status(typed, opened.pin, CLIENT)).state == "open"


async def test_feedback_on_the_case_is_reported_per_organisation(node: NodeService) -> None:
    opened = await node.open_case(items(3, 4), Distribution(), "token:helpline")
    [record] = opened.records
    await node.feedback(Target(record, 0), "confirmed", None, "token:platform")
    await node.feedback(Target(record, 1), "actioned", None, "token:platform")
    status = await node.case_status(opened.reference, opened.pin, CLIENT)
    [org] = status.as_json()["feedback"]
    assert org["origin"] == node.origin and org["confirmed"] == 1 and org["actioned"] == 1
    assert status.plain_words()[2] == \
        "Reported back: Test Commission: confirmed 1, actioned 1."


async def test_withdrawal_revokes_every_record_and_stops_matching(node: NodeService) -> None:
    opened = await node.open_case(items(*range(10, 15)), Distribution(), "token:helpline")
    before = await node.store.read(lambda s: s.head(node.origin))
    status = await node.withdraw_case(opened.reference, opened.pin, CLIENT)
    assert status.state == "withdrawn" and status.withdrawn_ms is not None
    assert [await matches(node, seed) for seed in range(10, 15)] == [0] * 5
    head = await node.store.read(lambda s: s.head(node.origin))
    assert head is not None and before is not None and head.seq == before.seq + 1
    raw = await node.store.read(lambda s: s.record_at(node.origin, head.seq))
    assert raw is not None
    revoke = SignedRecord.from_bytes(raw).body.to_json()
    assert revoke["reason"] == "withdrawn"
    assert sorted(t["record"] for t in revoke["targets"]) == sorted(opened.records)
    assert status.as_json()["withdrawal"]["signed"] is True
    assert status.plain_words()[-1].startswith("Withdrawn ")
    assert status.plain_words()[-1].endswith("; it no longer matches at this node.")
    assert status.plain_words()[1] == "No other node is known to this one yet."
    # a second withdrawal signs nothing more
    again = await node.withdraw_case(opened.reference, opened.pin, CLIENT)
    assert again.withdrawn_ms == status.withdrawn_ms
    after = await node.store.read(lambda s: s.head(node.origin))
    assert after is not None and after.seq == head.seq
    actions = [row["action"] for row in await audit(node)]
    assert actions.count("case_withdraw") == 1 and "case_open" in actions


async def test_wrong_reference_and_wrong_pin_give_the_same_error(node: NodeService) -> None:
    opened = await node.open_case(items(20), Distribution(), "token:helpline")
    wrong_pin = "00000000" if opened.pin != "00000000" else "11111111"
    with pytest.raises(CaseAccessError) as by_pin:
        await node.case_status(opened.reference, wrong_pin, CLIENT)
    with pytest.raises(CaseAccessError) as by_reference:
        await node.case_status("AAAA-BBBB-CCCC-DDDD", opened.pin, CLIENT)
    with pytest.raises(CaseAccessError) as by_garbage:
        await node.withdraw_case("not a reference", "x", CLIENT)
    assert str(by_pin.value) == str(by_reference.value) == str(by_garbage.value)
    failed = [row for row in await audit(node) if row["action"] == "case_pin_failed"]
    assert [row["detail"]["case_id"] is None for row in failed] == [True, True, False]
    assert all(row["actor"] == f"client:{CLIENT}" for row in failed)


async def test_wrong_pins_lock_the_reference_even_against_the_right_pin(
        node_dir: NodeDir) -> None:
    with_cases_config(node_dir, pin_attempts=3, lockout_seconds=600)
    node = await NodeService.open(node_dir.config())
    try:
        opened = await node.open_case(items(30), Distribution(), "token:helpline")
        wrong = "00000000" if opened.pin != "00000000" else "11111111"
        for n in range(3):  # from three addresses: the reference's own count locks it
            with pytest.raises(CaseAccessError):
                await node.case_status(opened.reference, wrong, f"203.0.113.{n}")
        with pytest.raises(CaseLockedError) as locked:
            await node.case_status(opened.reference, opened.pin, "203.0.113.99")
        assert 590 <= locked.value.retry_after_seconds <= 600
        [lock] = [row for row in await audit(node) if row["action"] == "case_locked"]
        assert lock["detail"]["locked"] == "reference" and lock["detail"]["seconds"] == 600
    finally:
        await node.close()

    reopened = await NodeService.open(node_dir.config())  # the lock survives a restart
    try:
        with pytest.raises(CaseLockedError):
            await reopened.case_status(opened.reference, opened.pin, "203.0.113.100")
        with pytest.raises(CaseLockedError):
            await reopened.withdraw_case(opened.reference, opened.pin, "203.0.113.101")
        assert await matches(reopened, 30) == 1  # nothing was withdrawn
    finally:
        await reopened.close()


async def test_an_unknown_reference_locks_exactly_as_a_known_one(node: NodeService) -> None:
    """No oracle: guessing at a reference that does not exist locks it just the same."""
    for attempt in range(3):
        with pytest.raises(CaseAccessError):
            await node.case_status("AAAA-BBBB-CCCC-DDDD", "12345678", f"192.0.2.{attempt}")
    with pytest.raises(CaseLockedError):
        await node.case_status("AAAA-BBBB-CCCC-DDDD", "12345678", "192.0.2.50")


async def test_one_client_is_limited_across_references(node: NodeService) -> None:
    opened = await node.open_case(items(40), Distribution(), "token:helpline")
    for n in range(8):  # client_attempts = 8, each on a different reference
        with pytest.raises(CaseAccessError):
            await node.case_status(f"AAAA-BBBB-CCCC-{n:04d}", "12345678", CLIENT)
    with pytest.raises(CaseLockedError):
        await node.case_status(opened.reference, opened.pin, CLIENT)
    # another address is not held back
    assert (await node.case_status(opened.reference, opened.pin, "192.0.2.200")).state == "open"


async def test_a_right_pin_clears_earlier_wrong_ones(node: NodeService) -> None:
    opened = await node.open_case(items(50), Distribution(), "token:helpline")
    wrong = "00000000" if opened.pin != "00000000" else "11111111"
    for _ in range(2):
        with pytest.raises(CaseAccessError):
            await node.case_status(opened.reference, wrong, CLIENT)
    await node.case_status(opened.reference, opened.pin, CLIENT)
    for _ in range(2):  # two more wrong ones do not reach the limit of 3
        with pytest.raises(CaseAccessError):
            await node.case_status(opened.reference, wrong, CLIENT)
    assert (await node.case_status(opened.reference, opened.pin, CLIENT)).state == "open"


async def test_review_holds_a_case_unsigned_until_approved(node: NodeService) -> None:
    head = await node.store.read(lambda s: s.head(node.origin))
    opened = await node.open_case(items(60, 61), Distribution(), "intake", review=True)
    assert opened.state == "pending_review" and opened.records == []
    assert await node.store.read(lambda s: s.head(node.origin)) == head
    assert await matches(node, 60) == 0
    status = await node.case_status(opened.reference, opened.pin, CLIENT)
    assert "waiting for a helpline to review it" in status.plain_words()[0]

    [pending] = await node.pending_cases()
    assert pending.items == 2 and pending.hash_types == {"pdq": 2}
    assert pending.opened_by == "intake"
    summary = await node.approve_case(pending.case_id, "token:helpline")
    assert summary.state == "open" and len(summary.records) == 1
    assert await matches(node, 60) == 1
    assert await node.pending_cases() == []
    with pytest.raises(CaseStateError):
        await node.approve_case(pending.case_id, "token:helpline")
    status = await node.case_status(opened.reference, opened.pin, CLIENT)
    assert status.state == "open" and status.records == 1


async def test_rejection_leaves_nothing_of_the_case(node: NodeService,
                                                    node_dir: NodeDir) -> None:
    value = pdq(70)
    opened = await node.open_case(items(70), Distribution(), "intake", review=True)
    [pending] = await node.pending_cases()
    await node.reject_case(pending.case_id, "token:helpline")
    assert await node.pending_cases() == []
    with pytest.raises(CaseAccessError):
        await node.case_status(opened.reference, opened.pin, CLIENT)
    with pytest.raises(CaseNotFoundError):
        await node.reject_case(pending.case_id, "token:helpline")
    await node.store.write(lambda s: s.checkpoint())
    conn = sqlite3.connect(node_dir.config().db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM cases").fetchone() == (0,)
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert value not in dump
    actions = [row["action"] for row in await audit(node)]
    assert "case_reject" in actions


async def test_withdrawing_a_case_under_review_signs_nothing(node: NodeService) -> None:
    opened = await node.open_case(items(80), Distribution(), "intake", review=True)
    head = await node.store.read(lambda s: s.head(node.origin))
    status = await node.withdraw_case(opened.reference, opened.pin, CLIENT)
    assert status.state == "withdrawn" and not status.shared
    assert await node.store.read(lambda s: s.head(node.origin)) == head
    assert status.plain_words() == [status.plain_words()[0]]
    assert "before it was shared" in status.plain_words()[0]
    assert await node.pending_cases() == []


async def test_a_case_is_capped_and_must_hold_something(node: NodeService) -> None:
    with pytest.raises(CaseLimitError, match="items: a case holds at most 5 items, got 6"):
        await node.open_case(items(*range(90, 96)), Distribution(), "intake")
    with pytest.raises(CaseNotFoundError):
        await node.approve_case("0" * 24, "token:helpline")


async def test_wrong_pins_sent_at_once_cannot_pass_the_limit_together(
        node: NodeService) -> None:
    """Each try is counted before its PIN is checked, so ten sent at the same moment get at
    most ``pin_attempts`` (3) checks; the rest are refused as locked."""
    opened = await node.open_case(items(100), Distribution(), "token:helpline")
    wrong = "00000000" if opened.pin != "00000000" else "11111111"
    outcomes = await asyncio.gather(*(node.case_status(opened.reference, wrong, f"192.0.2.{n}")
                                      for n in range(10)), return_exceptions=True)
    kinds = sorted(type(outcome).__name__ for outcome in outcomes)
    assert kinds == ["CaseAccessError"] * 3 + ["CaseLockedError"] * 7
