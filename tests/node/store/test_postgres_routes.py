"""Two parts of a node that read the store in their own way, on PostgreSQL: the match
workers (``[match_workers]``, processes that open the database as followers) and the bodies
route (``POST /v1/bodies``, which body repair asks). Real ``hashmesh run`` processes on the
real server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hashmesh.node.config.peers import add_peer, remove_peer
from tests.node.store.test_postgres_node import make_node, matched_records, peer, wait_for
from tests.node.test_cli_match_workers import NEAR, VALUE, Node
from tests.node.test_cli_match_workers import wait_for as wait_until

pytestmark = pytest.mark.serial


def test_match_workers_on_postgresql_answer_adds_and_never_what_was_revoked(
        tmp_path: Path, pg_url: str) -> None:
    node = Node(tmp_path)
    with node.config.open("a") as config:
        config.write(f'\n[store]\nurl = "{pg_url}"\n')
    node.process.start(timeout=60)
    try:
        assert len(node.workers()) == 2
        wait_until(lambda: node.call(node.url + "/v1/status")[1]["match_workers"]["ready"] == 2,
                   30, "both workers ready")
        status, added = node.call(node.url + "/v1/records", "POST",
                                  {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
        assert status == 201, added
        record = added["records"][0]["id"]
        wait_until(lambda: all(node.matched(NEAR) == [record] for _ in range(32)), 10,
                   "both workers index the add")
        status, _ = node.call(node.url + "/v1/revocations", "POST",
                              {"targets": [record], "reason": "withdrawn"})
        assert status == 201
        assert [node.matched(NEAR) for _ in range(32)] == [[]] * 32  # at once, every worker
        # the workers' audit rows of their matches reach the database too
        wait_until(lambda: "match" in {row["action"] for row in audit_rows(pg_url)}, 10,
                   "the workers' audit rows")
    finally:
        node.process.stop()


def audit_rows(pg_url: str) -> list[dict[str, object]]:
    from hashmesh.node.store.postgres import PostgresStore

    store = PostgresStore(pg_url, follower=True)
    try:
        return store.audit_rows(1000)
    finally:
        store.close()


def test_a_peer_fills_its_stubs_from_a_node_on_postgresql_by_the_bodies_route(
        tmp_path: Path, pg_url: str) -> None:
    """The SQLite peer first keeps only stubs of the PostgreSQL node's records (its accept
    policy takes no list); once its policy widens, body repair asks ``POST /v1/bodies`` of
    the node on PostgreSQL and completes them."""
    from tests.cli_process import NodeProcess, run_json

    pg_cfg, pg_http, pg_origin = make_node(tmp_path, "pg", "127.0.0.2", pg_url)
    lite_cfg, lite_http, lite_origin = make_node(tmp_path, "lite", "127.0.0.3", None)
    add_peer(pg_cfg.parent / "peers.toml", peer("lite", lite_http, lite_cfg, lite_origin))
    narrow = dataclasses.replace(peer("pg", pg_http, pg_cfg, pg_origin), accept_lists=())
    add_peer(lite_cfg.parent / "peers.toml", narrow)
    value = "3c" * 32
    pg = NodeProcess(pg_cfg, pg_http, tmp_path / "pg.log").start()
    lite = NodeProcess(lite_cfg, lite_http, tmp_path / "lite.log").start()
    try:
        ours = run_json("add", "--config", pg_cfg, f"pdq:{value}")["records"][0]["id"]
        # its own key record, the node's key record and the add, as a stub: no hash
        wait_for(lambda: run_json("status", "--config", lite_cfg)["counts"]["records"] == 3,
                 30, "the SQLite peer pulls the record")
        assert run_json("status", "--config", lite_cfg)["counts"]["hashes_active"] == 0
        assert matched_records(lite_cfg, value) == []

        remove_peer(lite_cfg.parent / "peers.toml", "pg")
        add_peer(lite_cfg.parent / "peers.toml", dataclasses.replace(narrow, accept_lists=None))
        wait_for(lambda: matched_records(lite_cfg, value) == [ours], 30,
                 "the peer completes the stub from the bodies route")
    finally:
        pg.stop()
        lite.stop()
