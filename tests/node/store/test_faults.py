"""Faults a node on PostgreSQL must ride out without a restart: the database restarting
under it while it serves matches, and a follower's connections being dropped. Real
``hashmesh run`` processes, a real server stopped and started with ``pg_ctl``."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
import pytest

from tests.cli_process import run_cli
from tests.node.store.test_cluster import Process, wait_for
from tests.pg import PgControl

pytestmark = pytest.mark.serial


def two_processes(tmp_path: Path, pg_url: str) -> tuple[Process, Process]:
    run_cli("init", tmp_path / "node", "--name", "Scaled Commission")
    directory = tmp_path / "node"
    (directory / "node.toml").write_text((directory / "node.toml").read_text()
                                         + f'\n[store]\nurl = "{pg_url}"\n')
    token = (directory / "cli-token").read_text().strip()
    return Process(directory, "p0", token), Process(directory, "p1", token)


def add(process: Process, value: str) -> str:
    status, body = process.call("POST", "/v1/records",
                                {"items": [{"hashes": [{"type": "pdq", "value": value}]}]})
    assert status == 201, body
    record: str = body["records"][0]["id"]
    return record


def test_matches_fail_cleanly_while_the_database_restarts_and_recover_without_a_restart(
        tmp_path: Path, pg_url: str, pg_control: PgControl) -> None:
    leader, follower = two_processes(tmp_path, pg_url)
    rng = random.Random(1)
    value = f"{rng.getrandbits(256):064x}"
    try:
        leader.node.start()
        follower.node.start()
        record = add(leader, value)
        wait_for(lambda: follower.matches(value) == [record], 5, "the follower indexes the add")

        pg_control.stop()
        for process in (leader, follower):
            status, body = process.call("POST", "/v1/match",
                                        {"hashes": [{"type": "pdq", "value": value}]})
            assert status == 503 and body["error"]["code"] == "STORE_UNAVAILABLE", body
        pg_control.start()

        wait_for(lambda: leader.matches(value) == follower.matches(value) == [record], 15,
                 "both processes answer again")
        leads = [p for p in (leader, follower) if p.cluster()["leads"]]
        wait_for(lambda: sum(p.cluster()["leads"] for p in (leader, follower)) == 1, 10,
                 "one process holds the lease again")
        leads = [p for p in (leader, follower) if p.cluster()["leads"]]
        other = follower if leads[0] is leader else leader
        value = f"{rng.getrandbits(256):064x}"
        record = add(leads[0], value)
        wait_for(lambda: other.matches(value) == [record], 5, "the other process follows")
    finally:
        leader.node.stop()
        follower.node.stop()


def test_a_follower_whose_connections_are_dropped_reconnects_and_keeps_following(
        tmp_path: Path, pg_url: str, pg_server: str) -> None:
    leader, follower = two_processes(tmp_path, pg_url)
    rng = random.Random(2)
    try:
        leader.node.start()
        follower.node.start()
        assert follower.node.process is not None
        with psycopg.connect(pg_server, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"hashmesh pid {follower.node.process.pid}",)).fetchone()
        assert dropped is not None and dropped[0] >= 2  # its reader and its listener at least
        value = f"{rng.getrandbits(256):064x}"
        record = add(leader, value)
        wait_for(lambda: follower.matches(value) == [record], 30,
                 "the follower reconnects and indexes the add")
        assert leader.cluster()["leads"] and follower.cluster()["leader"] == leader.url
    finally:
        leader.node.stop()
        follower.node.stop()
