"""Issue 18 on one node: strict query integers (4), a sweeper that fails is restarted and
never stops ``close()`` (6), alert gauges read from the store at start (7), an add split over
several records stored whole or not at all (9), and the supervised-task helper itself."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient

from hashmesh.node.api.app import create_app
from hashmesh.node.config.peers import add_peer
from hashmesh.node.runtime.metrics import NodeMetrics
from hashmesh.node.runtime.tasks import Supervisor
from hashmesh.node.service import NodeService
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.log import detect_equivocation
from hashmesh.protocol.records import Distribution, HashEntry, Item
from tests.conftest import NodeDir, free_port
from tests.federation.hostile import HostilePeer, OriginLog
from tests.invariants import assert_index_matches_store

Client = TestClient[Any, Any]


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


# -- 4: integers in query strings ----------------------------------------------------------

@pytest.mark.parametrize("value", ["²", "٣", "1²", "9" * 5000, "-1", "+3", " 3", "3.0", ""])
async def test_image_threshold_that_is_not_ascii_digits_is_a_400_naming_it(
        api: Client, value: str) -> None:
    response = await api.post("/v1/match/image", params={"threshold.pdq": value}, data=b"x")
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error["field"]) == ("BAD_SCHEMA", "threshold.pdq")


@pytest.mark.parametrize("name", ["after", "limit", "max_bytes"])
@pytest.mark.parametrize("value", ["²", "9" * 5000, "1e3"])
async def test_signed_log_request_with_a_bad_integer_is_a_400_naming_it(
        make_node_dir: Any, name: str, value: str) -> None:
    hostile = HostilePeer("127.0.0.5", free_port("127.0.0.5"))
    node_dir = make_node_dir()
    add_peer(node_dir.path / "peers.toml", hostile.peer_entry())
    service = await NodeService.open(node_dir.config())
    app = create_app(service, federate=False)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    config = service.config
    await web.TCPSite(runner, config.listen.host, config.listen.port).start()
    try:
        async with ClientSession() as session:
            url = (f"http://{config.listen.host}:{config.listen.port}/v1/log/"
                   f"{service.origin}?{name}={value}")
            status, answer = await hostile.send(session, "GET", url)
        assert status == 400, answer
        assert (answer["error"]["code"], answer["error"]["field"]) == ("BAD_SCHEMA", name)
    finally:
        await runner.cleanup()


# -- the supervisor --------------------------------------------------------------------------

async def test_a_loop_that_dies_is_logged_counted_and_started_again() -> None:
    metrics = NodeMetrics()
    supervisor = Supervisor(metrics.background_task_failures, first_restart=0.01)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise OSError(f"run {len(runs)} failed")
        await asyncio.Event().wait()

    supervisor.start("flaky", flaky)
    for _ in range(200):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(runs) == 3
    state = supervisor.status()["flaky"]
    assert state["failures"] == 2 and state["running"]
    assert state["last_error"] == "OSError: run 2 failed"
    assert metrics.registry.get_sample_value("hashmesh_background_task_failures_total",
                                             {"task": "flaky"}) == 2
    await supervisor.stop_all()
    assert not supervisor.status()["flaky"]["running"]


# -- 6: the expiry sweeper -----------------------------------------------------------------

async def test_sweeper_that_fails_is_restarted_and_close_still_writes_the_audit(
        node_dir: NodeDir) -> None:
    service = await NodeService.open(node_dir.config())
    service.sweep_seconds = 0.02
    service.tasks.first_restart = 0.02
    await service.start_background()
    service.store.audit_later("token:t", "match", {"queued": "before the fault"})
    # a real fault: the store's read connections are gone, so every sweep raises
    for conn in service.store.store._reader_conns:
        conn.close()
    for _ in range(300):
        if service.tasks.status()["expiry-sweeper"]["failures"] >= 2:
            break
        await asyncio.sleep(0.01)
    state = service.tasks.status()["expiry-sweeper"]
    assert state["failures"] >= 2, state
    assert "closed database" in state["last_error"]
    assert service.metrics.registry.get_sample_value(
        "hashmesh_background_task_failures_total", {"task": "expiry-sweeper"}) >= 2
    await service.close()  # does not raise, and closes the store
    store = Store(service.config.db_path)
    try:
        assert [r["detail"] for r in store.audit_rows() if r["action"] == "match"] == [
            {"queued": "before the fault"}]
    finally:
        store.close()


async def test_status_shows_background_tasks(api: Client) -> None:
    status = await (await api.get("/v1/status")).json()
    assert set(status["background_tasks"]) >= {"expiry-sweeper", "wal-checkpoint"}
    assert status["background_tasks"]["expiry-sweeper"] == {
        "running": True, "failures": 0, "last_error": None, "last_failure_at": None}


# -- 7: alert gauges after a restart ----------------------------------------------------------

async def test_alert_gauges_are_read_from_the_store_at_start_and_cleared_by_unfreeze(
        node_dir: NodeDir) -> None:
    origin_log = OriginLog()
    first = origin_log.extend(2)
    fork = origin_log.fork(1)
    fork.extend(1)
    evidence = detect_equivocation(first[1], fork.records[1], [])
    assert evidence is not None
    service = await NodeService.open(node_dir.config())
    try:
        await service.store.write(lambda s: s.freeze(origin_log.origin, 1, evidence, "test"))
        await service.store.write(lambda s: s.block_signing("restored from a backup"))
    finally:
        await service.close()

    def gauges(svc: NodeService) -> tuple[float | None, ...]:
        return tuple(svc.metrics.registry.get_sample_value(name) for name in (
            "hashmesh_signing_blocked", "hashmesh_frozen_origins",
            "hashmesh_equivocation_evidence"))

    service = await NodeService.open(node_dir.config())
    try:
        assert gauges(service) == (1, 1, 1)
        await service.store.write(lambda s: s.unfreeze(origin_log.origin, "cli"))
        await service.store.write(lambda s: s.unblock_signing("cli"))
    finally:
        await service.close()
    service = await NodeService.open(node_dir.config())
    try:
        assert gauges(service)[:2] == (0, 0)
    finally:
        await service.close()


# -- 9: an add that needs several records ----------------------------------------------------

async def test_an_add_of_several_records_is_stored_whole_or_not_at_all(
        node_dir: NodeDir) -> None:
    service = await NodeService.open(node_dir.config())
    try:
        items = [Item((HashEntry("pdq", pdq(i)),), "ncii") for i in range(3 * 256)]
        before = (await service.store.read(lambda s: s.counts()))["records"]  # init's key record
        # room for about one record of 256 items: a real "database or disk is full"
        await service.store.write(lambda s: s.conn.execute(
            "PRAGMA max_page_count = "
            + str(s.conn.execute("PRAGMA page_count").fetchone()[0] + 30)))
        with pytest.raises(Exception, match="full"):
            await service.add(items, Distribution(), "test")
        counts = await service.store.read(lambda s: s.counts())
        assert (counts["records"], counts["hashes_active"]) == (before, 0), counts
        await service.store.write(lambda s: s.conn.execute("PRAGMA max_page_count=1073741823"))
        records = await service.add(items, Distribution(), "test")  # the client's retry
        assert len(records) == 3
        counts = await service.store.read(lambda s: s.counts())
        assert counts["hashes_active"] == 3 * 256
        await assert_index_matches_store(service)
    finally:
        await service.close()


async def test_unfreeze_by_the_cli_on_a_running_node_clears_the_gauges_at_the_next_scrape(
        node_dir: NodeDir, aiohttp_client: Any) -> None:
    service = await NodeService.open(node_dir.config())
    client = await aiohttp_client(create_app(service, federate=False))
    headers = {"Authorization": f"Bearer {node_dir.token}"}

    async def blocked_gauge() -> float:
        text = await (await client.get("/metrics", headers=headers)).text()
        [line] = [x for x in text.splitlines() if x.startswith("hashmesh_signing_blocked ")]
        return float(line.split()[1])

    assert await blocked_gauge() == 0
    await service.own_log_behind("peer", 5)
    assert await blocked_gauge() == 1
    other = Store(service.config.db_path)  # what `hashmesh unfreeze` does, beside the node
    try:
        other.unblock_signing("cli")
    finally:
        other.close()
    assert await blocked_gauge() == 0


async def test_a_loop_that_turns_its_cancellation_into_an_error_still_stops() -> None:
    """As aiohttp's connect can: the stop must not hang, nor the loop go on retrying."""
    supervisor = Supervisor(first_restart=0.01)
    attempts: list[int] = []

    async def retrying() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                attempts.append(1)
                if len(attempts) > 1:
                    raise
                raise ConnectionError("connect call failed") from None

    supervisor.start("swallower", retrying)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(supervisor.stop("swallower"), timeout=5)
    assert supervisor.status()["swallower"]["failures"] == 0
