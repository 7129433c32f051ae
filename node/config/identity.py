"""This node's three keys, read from the files ``node.toml`` names."""

from __future__ import annotations

from dataclasses import dataclass

from hashmesh.node.config.keyfile import read_secret_key
from hashmesh.node.config.node import NodeConfig
from hashmesh.protocol.keys import SigningKey


@dataclass(frozen=True)
class Identity:
    """This node's keys: the origin's root key, the log signer and the transport key."""

    root: SigningKey
    signer: SigningKey
    node: SigningKey

    @property
    def origin(self) -> str:
        return self.root.id

    @classmethod
    def load(cls, config: NodeConfig) -> Identity:
        root = read_secret_key(config.keys.root)
        signer = (root if config.keys.signing == config.keys.root
                  else read_secret_key(config.keys.signing))
        node = root if config.keys.node == config.keys.root else read_secret_key(config.keys.node)
        return cls(root=root, signer=signer, node=node)
