"""``hashmesh init`` makes separate root, signing and node keys, so the root key can go offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from hashmesh.node.config.identity import Identity
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.service import ForbiddenError, NodeService
from hashmesh.node.store.sqlite import Store
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import Distribution, HashEntry, Item, KeyBody
from tests.conftest import NodeDir


def test_init_makes_three_keys_and_authorises_the_signing_key(node_dir: NodeDir) -> None:
    config = node_dir.config()
    identity = Identity.load(config)
    assert identity.root is not None and identity.root.id == node_dir.origin
    assert len({identity.root.id, identity.signer.id, identity.node.id}) == 3
    store = Store(config.db_path)
    try:
        ring = store.keyring(node_dir.origin)
    finally:
        store.close()
    assert ring.active_keys() == [identity.signer.id]


async def test_node_signs_with_its_root_key_offline(node_dir: NodeDir, tmp_path: Path) -> None:
    (node_dir.path / "keys" / "root.key").rename(tmp_path / "vault-root.key")
    service = await NodeService.open(node_dir.config())
    try:
        assert service.identity.root is None and service.origin == node_dir.origin
        [record] = await service.add([Item((HashEntry("md5", "0" * 32),), "ncii")],
                                     Distribution(), "test")
        assert record.head.key == service.identity.signer.id != service.origin
        with pytest.raises(ForbiddenError, match="root key, which is offline"):
            await service._sign(KeyBody(SigningKey.generate().id), Distribution(), "test")
    finally:
        await service.close()


def test_root_key_that_is_not_the_configured_origin_is_refused(node_dir: NodeDir) -> None:
    config_path = node_dir.config_path
    text = config_path.read_text()
    config_path.write_text(text.replace(node_dir.origin, SigningKey.generate().id))
    with pytest.raises(ConfigError, match=r"keys\.origin: is ed25519:.* but the root key file"):
        Identity.load(node_dir.config())
