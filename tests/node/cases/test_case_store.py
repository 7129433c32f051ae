"""The case verbs on both store backends: the SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from hashmesh.node.cases import CaseAccessError, CaseLockedError, CaseStateError
from hashmesh.node.service import NodeService
from hashmesh.node.store.interface import OriginFrozenError
from hashmesh.protocol.records import Distribution, HashEntry, Item
from tests.conftest import NodeDir
from tests.node.store.test_contract import config_for


def items(*seeds: int) -> list[Item]:
    return [Item((HashEntry("pdq", random.Random(s).getrandbits(256).to_bytes(32, "big")
                            .hex()),), "ncii") for s in seeds]


@pytest.fixture(params=["sqlite", "postgresql"])
async def node(request: pytest.FixtureRequest, node_dir: NodeDir
               ) -> AsyncIterator[NodeService]:
    node_dir.config_path.write_text(node_dir.config_path.read_text()
                                    + "\n[cases]\npin_attempts = 2\n")
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    service = await NodeService.open(config_for(node_dir, url))
    yield service
    await service.close()


async def test_a_case_from_opening_to_withdrawal(node: NodeService) -> None:
    opened = await node.open_case(items(1, 2), Distribution(), "t")
    assert (await node.case_status(opened.reference, opened.pin, "c")).state == "open"
    withdrawn = await node.withdraw_case(opened.reference, opened.pin, "c")
    assert withdrawn.state == "withdrawn" and withdrawn.withdrawal_signed

    held = await node.open_case(items(3), Distribution(), "t", review=True)
    [pending] = await node.pending_cases()
    assert (await node.approve_case(pending.case_id, "t")).state == "open"
    with pytest.raises(CaseStateError):
        await node.reject_case(pending.case_id, "t")
    assert (await node.case_status(held.reference, held.pin, "c")).records == 1


async def test_wrong_pins_lock_on_both_backends(node: NodeService) -> None:
    opened = await node.open_case(items(4), Distribution(), "t")
    wrong = "00000000" if opened.pin != "00000000" else "11111111"
    for _ in range(2):
        with pytest.raises(CaseAccessError):
            await node.case_status(opened.reference, wrong, "c")
    with pytest.raises(CaseLockedError):
        await node.case_status(opened.reference, opened.pin, "c")


async def test_a_refused_signing_leaves_no_case(node: NodeService) -> None:
    await node.store.write(lambda s: s.block_signing("a restored backup (test)"))
    with pytest.raises(OriginFrozenError):
        await node.open_case(items(5), Distribution(), "t")
    assert await node.store.read(lambda s: s.cases_in_state("open")) == []
    held = await node.open_case(items(6), Distribution(), "t", review=True)  # signs nothing
    [pending] = await node.pending_cases()
    with pytest.raises(OriginFrozenError):
        await node.approve_case(pending.case_id, "t")
    [still] = await node.pending_cases()  # the approval was undone whole
    assert still.state == "pending_review" and still.records == []
    assert (await node.case_status(held.reference, held.pin, "c")).state == "pending_review"


async def test_a_case_survives_the_move_to_postgresql(node_dir: NodeDir, pg_url: str) -> None:
    """``hashmesh migrate --to postgresql://…`` copies the case tables; with the same data
    directory (its case-secret) the reference and PIN still open the case, and a lock holds."""
    import dataclasses

    from hashmesh.node.store.port import port_to_postgres

    node_dir.config_path.write_text(node_dir.config_path.read_text()
                                    + "\n[cases]\npin_attempts = 2\n")
    config = node_dir.config()
    lite = await NodeService.open(config)
    try:
        opened = await lite.open_case(items(7), Distribution(), "t")
        locked = await lite.open_case(items(8), Distribution(), "t")
        for _ in range(2):
            with pytest.raises(CaseAccessError):
                await lite.case_status(locked.reference, "99999999", "c")
    finally:
        await lite.close()
    checks = port_to_postgres(config.db_path, pg_url)
    assert {"cases", "case_attempts"} <= {check.table for check in checks}
    moved = await NodeService.open(dataclasses.replace(config, store_url=pg_url))
    try:
        assert (await moved.case_status(opened.reference, opened.pin, "c")).state == "open"
        with pytest.raises(CaseLockedError):
            await moved.case_status(locked.reference, locked.pin, "c")
    finally:
        await moved.close()


def test_a_process_without_the_lease_counts_tries_but_signs_no_case(pg_url: str) -> None:
    """On a node of several PostgreSQL processes, any process may take a person's status
    request (counting and auditing the tries changes no log); signing still needs the lease."""
    from hashmesh.node.store.cases import AttemptLimit, CaseRow
    from hashmesh.node.store.cluster import Cluster
    from hashmesh.node.store.postgres import NotLeaderError, PostgresStore
    from tests.protocol.builders import ROOT, add_body, pdq_hex

    leader, follower = PostgresStore(pg_url), PostgresStore(pg_url)
    leads, follows = Cluster(leader, "http://leader:1"), Cluster(follower, "http://follower:2")
    try:
        assert leads.try_lead() and not follows.try_lead()
        limit = AttemptLimit(tries=2, lock_ms=1000, max_lock_ms=1000, forget_ms=1000)
        assert follower.case_attempt_begin({"reference:x": limit}, 10).locked_ms == 0
        follower.case_attempt_failed("client:c", None, {})
        follower.case_attempt_succeeded("reference:x", "client:c")
        assert follower.case_attempt_begin({"reference:y": limit}, 20).locks == ()
        assert follower.case_attempt_begin({"reference:y": limit}, 30).locks == (
            ("reference:y", 1000),)
        assert follower.case_attempts(["reference:y"])["reference:y"][2] == 1030
        row = CaseRow(case_id="c" * 24, ref_mac="m", pin_hash="h", state="open",
                      opened_ms=1, opened_by="t", items=1)
        with pytest.raises(NotLeaderError, match="the leader is http://leader:1"):
            follower.case_open(row, signer=ROOT, origin=ROOT.id, bodies=[add_body(pdq_hex(1))],
                               dist=Distribution(), actor="t")
        assert follower.case("c" * 24) is None
    finally:
        leads.close()
        follows.close()
        leader.close()
        follower.close()
