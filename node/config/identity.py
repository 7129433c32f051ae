"""This node's three keys, read from the files ``node.toml`` names.

The root key may be offline (its file absent) when ``[keys] origin`` names it: the node then
signs with its signing key and cannot sign ``key`` records, which an operator makes with the
root key brought back (``hashmesh key rotate|revoke``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hashmesh.node.config.keyfile import KeyFileError, read_secret_key
from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.protocol.keys import SigningKey


@dataclass(frozen=True)
class Identity:
    """This node's keys: the origin's root key (``None`` when offline), the log signer and
    the transport key."""

    root: SigningKey | None
    signer: SigningKey
    node: SigningKey
    origin_id: str = ""

    def __post_init__(self) -> None:
        if not self.origin_id:
            if self.root is None:
                raise ValueError("an identity without its root key needs the origin id")
            object.__setattr__(self, "origin_id", self.root.id)

    @property
    def origin(self) -> str:
        return self.origin_id

    @classmethod
    def load(cls, config: NodeConfig) -> Identity:
        keys = config.keys
        root: SigningKey | None
        try:
            root = read_secret_key(keys.root)
        except KeyFileError:
            if keys.origin is None or Path(keys.root).exists():
                raise
            root = None  # kept offline; [keys] origin says whose log this is
        if root is not None and keys.origin is not None and root.id != keys.origin:
            raise ConfigError(f"is {keys.origin} but the root key file holds {root.id}",
                              "keys.origin", config.path)
        if root is None and keys.signing == keys.root:
            raise ConfigError("the root key file is absent (offline) and no separate signing "
                              "key is configured", "keys.signing", config.path)
        signer = (root if root is not None and keys.signing == keys.root
                  else read_secret_key(keys.signing))
        node = (root if root is not None and keys.node == keys.root
                else read_secret_key(keys.node))
        return cls(root=root, signer=signer, node=node,
                   origin_id=root.id if root is not None else str(keys.origin))
