"""``[federation.listen]``: peers on a port of their own, the local API on another.

Two real ``hashmesh run`` processes. Node A gives its peers a separate listener; node B peers
with A at that URL. Records travel, and neither port serves the other's routes.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.config.peers import PeerConfig, add_peer
from hashmesh.protocol.keys import PublicKey
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

pytestmark = pytest.mark.serial

VALUE = "a5" * 32


def call(url: str, token: str = "", method: str = "GET", body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def make_node(tmp_path: Path, name: str, host: str, extra: str = "") -> tuple[Path, str, int]:
    port = free_port(host)
    directory = tmp_path / name
    run_cli("init", directory, "--name", name, "--host", host, "--port", str(port))
    config = directory / "node.toml"
    config.write_text(config.read_text() + extra)
    return config, (directory / "cli-token").read_text().strip(), port


def peer_of(config: Path) -> PeerConfig:
    """How another node configures this one, from ``hashmesh id``."""
    shown = run_json("id", "--config", config)["peers_toml"]
    origin = PublicKey.from_id(shown["origin"])
    return PeerConfig(name=shown["name"], url=shown["url"],
                      node_key=PublicKey.from_id(shown["node_key"]), origin=origin,
                      accept_origins=(origin,))


def test_records_travel_through_the_peer_listener_and_the_ports_stay_apart(
        tmp_path: Path) -> None:
    peer_port = free_port("127.0.0.2")
    a_config, a_token, a_port = make_node(
        tmp_path, "a", "127.0.0.2", f'\n[federation.listen]\nport = {peer_port}\n')
    b_config, b_token, b_port = make_node(tmp_path, "b", "127.0.0.3")
    a_as_peer = peer_of(a_config)
    assert a_as_peer.url == f"http://127.0.0.2:{peer_port}"  # `hashmesh id` hands out the peer port
    add_peer(b_config.parent / "peers.toml", a_as_peer)
    add_peer(a_config.parent / "peers.toml", peer_of(b_config))
    a_api, a_peers = f"http://127.0.0.2:{a_port}", f"http://127.0.0.2:{peer_port}"
    b_api = f"http://127.0.0.3:{b_port}"
    a = NodeProcess(a_config, a_api, tmp_path / "a.log").start()
    b = NodeProcess(b_config, b_api, tmp_path / "b.log").start()
    try:
        status, added = call(a_api + "/v1/records", a_token, "POST",
                             {"items": [{"hashes": [{"type": "pdq", "value": VALUE}]}]})
        assert status == 201
        record = added["records"][0]["id"]
        query = {"hashes": [{"type": "pdq", "value": VALUE}]}
        deadline = time.monotonic() + 20
        while not call(b_api + "/v1/match", b_token, "POST", query)[1]["results"][0]["matches"]:
            assert time.monotonic() < deadline, "B never received A's record"
            time.sleep(0.1)
        assert call(b_api + f"/v1/records/{record}", b_token)[0] == 200

        assert call(a_api + "/v1/heads")[0] == 404  # the API port has no peer routes
        status, answer = call(a_peers + "/v1/match", a_token, "POST", query)
        assert status == 404  # and the peer port serves no local API, whatever the token
        assert call(a_peers + "/v1/status", a_token)[0] == 404
        assert call(a_peers + "/healthz")[0] == 200
        status, answer = call(a_peers + "/v1/heads")  # unsigned: refused as before
        assert (status, answer["error"]["code"]) == (401, "MISSING_SIGNATURE")
    finally:
        b.stop()
        a.stop()


def test_with_a_peer_listener_peers_must_sign_for_it_not_for_the_api_port(
        tmp_path: Path) -> None:
    from hashmesh.node.config.node import load_node_config
    from hashmesh.node.federation.routes import own_authorities

    config_path, _, api_port = make_node(tmp_path, "a", "127.0.0.2",
                                         "\n[federation.listen]\nport = 9999\n")
    assert own_authorities(load_node_config(config_path)) == {"127.0.0.2:9999"}
    config_path.write_text(config_path.read_text().replace(
        "[federation.listen]", 'public_url = "https://peers.example.org"\n[federation.listen]'))
    assert own_authorities(load_node_config(config_path)) == {"127.0.0.2:9999",
                                                              "peers.example.org"}
    assert f"127.0.0.2:{api_port}" not in own_authorities(load_node_config(config_path))
