"""``[groups]`` in node.toml: local names for opaque sharing-group ids (SPEC §9.1).

The real CLI against a real node process: ``hashmesh add --group NAME`` signs the record
with the group's id (the name never leaves the node), an unknown name is refused naming
``dist.group``; node.toml and peers.toml errors name the field.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashmesh.node.config.node import load_node_config
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import GROUP_ID_PATTERN
from tests.cli_process import NodeProcess, run_cli, run_json
from tests.conftest import free_port

GROUP_ID = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"
PDQ = "f" * 32 + "0" * 32


@pytest.fixture
def grouped_node(tmp_path: Path) -> Iterator[tuple[Path, NodeProcess]]:
    port = free_port()
    directory = tmp_path / "node"
    run_cli("init", directory, "--name", "Group Commission", "--port", str(port))
    config = directory / "node.toml"
    config.write_text(config.read_text() + f'\n[groups]\neu-helplines = "{GROUP_ID}"\n')
    node = NodeProcess(config, f"http://127.0.0.1:{port}", tmp_path / "node.log").start()
    yield config, node
    node.stop()


def test_add_with_a_group_name_signs_the_groups_opaque_id(
        grouped_node: tuple[Path, NodeProcess]) -> None:
    config, node = grouped_node
    added = run_json("add", "--config", config, "--scope", "group", "--group", "eu-helplines",
                     f"pdq:{PDQ}")
    [record] = added["records"]
    token = (config.parent / "cli-token").read_text().strip()
    request = urllib.request.Request(f"{node.url}/v1/records/{record['id']}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        stored = json.load(response)
    assert stored["record"]["head"]["dist"] == {"scope": "group", "group": GROUP_ID}
    assert "eu-helplines" not in json.dumps(stored)

    refused = run_cli("add", "--config", config, "--scope", "group", "--group", "us-helplines",
                      f"pdq:{PDQ[::-1]}", check=False)
    assert refused.returncode != 0
    assert "dist.group" in refused.stderr and "us-helplines" in refused.stderr
    assert "eu-helplines" in refused.stderr  # the names it knows


def test_group_new_prints_a_groups_line_with_a_fresh_id() -> None:
    first = run_cli("group", "new", "eu-helplines").stdout.strip()
    second = run_cli("group", "new", "eu-helplines").stdout.strip()
    name, _, value = first.partition(" = ")
    assert name == "eu-helplines" and GROUP_ID_PATTERN.fullmatch(json.loads(value))
    assert first != second


MINIMAL = '[node]\nname = "n"\n[keys]\nroot = "keys/root.key"\n'


def config_with(tmp_path: Path, extra: str, peers: str = "") -> Path:
    (tmp_path / "peers.toml").write_text(peers)
    path = tmp_path / "node.toml"
    path.write_text(MINIMAL + extra)
    return path


def test_peers_name_groups_and_the_node_resolves_them_to_ids(tmp_path: Path) -> None:
    node_key = SigningKey(b"\x0a" * 32).id
    peers = (f'[[peer]]\nname = "a"\nurl = "https://a.example"\nnode_key = "{node_key}"\n'
             f'groups = ["eu-helplines", "{"ab" * 16}"]\n')
    config = load_node_config(config_with(tmp_path, f'[groups]\neu-helplines = "{GROUP_ID}"\n',
                                          peers))
    assert config.group_id("eu-helplines", "x") == GROUP_ID
    [peer] = config.load_peers()
    assert peer.groups == (GROUP_ID, "ab" * 16)  # a raw id is taken as an id


@pytest.mark.parametrize(("groups", "peer_groups", "where"), [
    ('eu-helplines = "EU"\n', "", "groups.eu-helplines"),
    ('"Bad Name" = "' + GROUP_ID + '"\n', "", "groups.Bad Name"),
    (f'a = "{GROUP_ID}"\nb = "{GROUP_ID}"\n', "", "groups.b"),
    (f'a = "{GROUP_ID}"\n', '["nowhere"]', "peer[0].groups[0]"),
])
def test_group_errors_name_the_field(tmp_path: Path, groups: str, peer_groups: str,
                                     where: str) -> None:
    node_key = SigningKey(b"\x0a" * 32).id
    peers = (f'[[peer]]\nname = "a"\nurl = "https://a.example"\nnode_key = "{node_key}"\n'
             f"groups = {peer_groups}\n") if peer_groups else ""
    with pytest.raises(ConfigError) as caught:
        load_node_config(config_with(tmp_path, "[groups]\n" + groups, peers)).load_peers()
    assert f": {where}:" in str(caught.value)


@pytest.mark.parametrize(("section", "where"), [
    ('witness_for = ["nope"]\n', "checkpoints.witness_for[0]"),
    ('quorum = 0\n', "checkpoints.quorum"),
    ('[checkpoints.witnesses]\n"ed25519:x" = []\n', "checkpoints.witnesses.ed25519:x"),
])
def test_checkpoint_config_errors_name_the_field(tmp_path: Path, section: str,
                                                 where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(config_with(tmp_path, "[checkpoints]\n" + section))
    assert f": {where}:" in str(caught.value)


def test_checkpoints_default_to_signing_every_five_minutes(tmp_path: Path) -> None:
    config = load_node_config(config_with(tmp_path, ""))
    assert (config.checkpoints.interval_seconds, config.checkpoints.max_age_seconds,
            config.checkpoints.quorum) == (300, 3600, 1)
    assert dict(config.checkpoints.witnesses) == {} and dict(config.groups) == {}
