"""A write sent to any process of a node on PostgreSQL succeeds: a process that does not sign
forwards it to the one that does (``node/api/forward.py``). Real ``hashmesh run`` processes on
one real database, and the real CLI."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.api.forward import FORWARDED_HEADER
from tests.cli_process import run_cli
from tests.node.store.test_cluster import Process, wait_for
from tests.node.store.test_faults import two_processes

pytestmark = pytest.mark.serial


def call(process: Process, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(process.url + path, method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_adds_revokes_and_feedback_sent_to_a_follower_are_signed_by_the_leader(
        tmp_path: Path, pg_url: str) -> None:
    leader, follower = two_processes(tmp_path, pg_url)
    rng = random.Random(61)
    try:
        leader.node.start()
        follower.node.start()
        assert leader.cluster()["leads"] and not follower.cluster()["leads"]

        value = f"{rng.getrandbits(256):064x}"
        status, added = follower.call("POST", "/v1/records", {"items": [
            {"hashes": [{"type": "pdq", "value": value}]}]})
        assert status == 201, added
        record = added["records"][0]["id"]
        status, stored = leader.call("GET", f"/v1/records/{record}")
        assert status == 200 and stored["id"] == record, stored
        wait_for(lambda: follower.matches(value) == [record] == leader.matches(value), 5,
                 "both processes index the forwarded add")

        status, verdict = follower.call("POST", "/v1/feedback",
                                        {"target": record, "verdict": "confirmed"})
        assert status == 201, verdict
        assert verdict["seq"] == added["records"][0]["seq"] + 1

        status, revoked = follower.call("POST", "/v1/revocations",
                                        {"targets": [record], "reason": "withdrawn"})
        assert status == 201 and revoked["seq"] == verdict["seq"] + 1, revoked
        assert leader.matches(value) == [] == follower.matches(value)

        # the CLI pointed at the follower's node.toml writes through it as well
        cli_value = f"{rng.getrandbits(256):064x}"
        run_cli("add", "--config", follower.config, "--no-progress", f"pdq:{cli_value}")
        wait_for(lambda: len(leader.matches(cli_value)) == 1, 5, "the CLI's add is stored")

        # the follower checks the token itself: nothing unauthenticated is sent on
        status, refused = call(follower, "/v1/records", {"items": []},
                               {"Authorization": "Bearer not-a-token"})
        assert status == 401 and refused["error"]["code"] == "UNAUTHORIZED"
        # a request that was already forwarded once is never sent on again (no loop)
        status, refused = call(follower, "/v1/records", {"items": [
            {"hashes": [{"type": "pdq", "value": value}]}]},
            {"Authorization": f"Bearer {follower.token}", FORWARDED_HEADER: "http://x:1"})
        assert status == 409 and refused["error"]["code"] == "NOT_LEADER", refused
        assert leader.url in refused["error"]["message"]
    finally:
        leader.node.stop()
        follower.node.stop()
