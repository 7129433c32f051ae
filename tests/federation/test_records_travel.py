"""Key records, feedback and our own log travel the federation like any record."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hashmesh.node.cli.keys import rotate_signing_key
from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import load_node_config
from hashmesh.node.service import HashQuery
from hashmesh.node.store.sqlite import OriginFrozenError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import Target
from tests.federation.cluster import Cluster, eventually


def pdq(seed: int) -> str:
    return f"{random.Random(seed).getrandbits(256):064x}"


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path)
    for name in "abc":
        cluster.make(name)
    cluster.link("a", "b")
    cluster.link("b", "c")
    yield cluster
    await cluster.stop()


async def test_signing_key_rotation_and_revocation_propagate(chain: Cluster,
                                                             tmp_path: Path) -> None:
    a = chain.nodes["a"]
    config = load_node_config(a.directory / "node.toml")
    root = read_secret_key(config.keys.root)
    first, second = SigningKey.generate(), SigningKey.generate()
    rotate_signing_key(config, root=root, old=root, new=first)
    rotate_signing_key(config, root=root, old=first, new=second)
    key_file = a.directory / "keys" / "second.key"
    from hashmesh.node.config.keyfile import write_secret_key

    write_secret_key(key_file, second)
    text = (a.directory / "node.toml").read_text()
    (a.directory / "node.toml").write_text(
        text.replace('signing = "keys/signing.key"', 'signing = "keys/second.key"'))
    await chain.start()
    assert a.svc.identity.signer.id == second.id
    record_id = await a.add(pdq(1))
    await eventually(lambda: _matches(chain, "c", pdq(1)), what="record by new key reaches c")

    ring = await chain.nodes["c"].svc.store.read(lambda s: s.keyring(a.origin))
    assert ring.grants[first.id].revoked_at == 4  # after init's key record at seq 1
    assert ring.grants[second.id].revoked_at is None
    raw = await chain.nodes["c"].svc.store.read(lambda s: s.record_bytes(record_id))
    assert raw is not None and second.id.encode() in raw


async def test_feedback_travels_back_to_the_origin(chain: Cluster) -> None:
    await chain.start()
    a, c = chain.nodes["a"], chain.nodes["c"]
    record_id = await a.add(pdq(2))
    await eventually(lambda: _matches(chain, "c", pdq(2)), what="add reaches c")
    await c.svc.feedback(Target(record_id), "confirmed", "seen on platform c", "test")
    await chain.nodes["b"].svc.feedback(Target(record_id), "actioned", None, "test")

    async def counted() -> bool:
        [result] = await a.svc.match([HashQuery("pdq", pdq(2))], {}, None, "test")
        return bool(result["matches"][0]["feedback"] == {"confirmed": 1, "actioned": 1})

    await eventually(counted, what="feedback from b and c counted on a")


async def test_node_restored_from_old_backup_refuses_to_sign(chain: Cluster) -> None:
    a = chain.nodes["a"]
    config = load_node_config(a.directory / "node.toml")
    await chain.start()
    await a.add(pdq(3))
    await chain.stop("a")
    backup = a.directory / "backup.db"
    shutil.copy(config.db_path, backup)
    await chain.start("a")
    await a.add(pdq(4))
    # seq 1 is init's key record, 2 the first add, 3 the one the backup lacks
    await eventually(lambda: _head_seq(chain, "b", a.origin, 3), what="b holds a's seq 3")
    await chain.stop("a")
    for suffix in ("", "-wal", "-shm"):
        Path(str(config.db_path) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, config.db_path)

    await chain.start("a")

    async def blocked() -> bool:
        return await a.svc.store.read(lambda s: s.signing_blocked()) is not None

    await eventually(blocked, what="a notices its own log is behind")
    with pytest.raises(OriginFrozenError):
        await a.add(pdq(5))
    await eventually(lambda: _head_seq(chain, "a", a.origin, 3),
                     what="a pulls its own records back from b")
    status = await a.svc.status()
    assert status["signing_blocked"] is not None


async def _matches(cluster: Cluster, name: str, value: str) -> bool:
    return bool(await cluster.nodes[name].matches(value))


async def _head_seq(cluster: Cluster, name: str, origin: str, seq: int) -> bool:
    heads = await cluster.nodes[name].heads()
    return heads.get(origin, (0, ""))[0] >= seq
