"""CLI commands for the operator's key and freeze decisions: rotate, revoke, unfreeze.

They write signed ``key``/``key_revoke`` records straight into the store, so they run with
the node stopped (the running node would otherwise keep signing with a key it no longer
holds); the records then travel to every peer like any other record.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
from pathlib import Path

from hashmesh.node.cli.support import CliError, print_json
from hashmesh.node.config.keyfile import read_secret_key, write_secret_key
from hashmesh.node.config.node import WILDCARD_HOSTS, NodeConfig, load_node_config
from hashmesh.node.store.interface import hold_data_dir, open_store
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.records import Distribution, KeyBody, KeyRevokeBody

KEYS_SECTION = re.compile(r"^\[keys\]\s*$", re.MULTILINE)
SIGNING_LINE = re.compile(r"^#?\s*signing\s*=.*$", re.MULTILINE)


def rotate(args: argparse.Namespace) -> int:
    """Authorise a fresh signing key, revoke the old one (unless it is the root key)."""
    config = load_node_config(args.config)
    refuse_if_running(config)
    root = read_secret_key(config.keys.root)
    old = read_secret_key(config.keys.signing)
    new = SigningKey.generate()
    key_path = config.keys.root.parent / f"signing-{time.strftime('%Y%m%dT%H%M%S')}.key"
    write_secret_key(key_path, new)
    records = rotate_signing_key(config, root=root, old=old, new=new)
    _point_config_at(config.path, key_path.relative_to(config.base_dir))
    print_json({"signing_key": new.id, "key_file": str(key_path),
                "records": [{"id": r, "seq": s} for r, s in records]})
    return 0


def rotate_signing_key(config: NodeConfig, *, root: SigningKey, old: SigningKey,
                       new: SigningKey) -> list[tuple[str, int]]:
    """Sign ``key`` (new) and, if old is not the root, ``key_revoke`` (old) records."""
    store = open_store(config)
    try:
        written = []
        bodies: list[KeyBody | KeyRevokeBody] = [KeyBody(new.id)]
        if old.id != root.id:
            bodies.append(KeyRevokeBody(old.id))
        for body in bodies:
            record, _ = store.append_local(signer=root, origin=root.id, body=body,
                                           dist=Distribution(), actor="cli:key")
            written.append((record.id, record.head.seq))
        return written
    finally:
        store.close()


def revoke_key(args: argparse.Namespace) -> int:
    """Revoke a (compromised) signing key; the node then signs with the root key."""
    config = load_node_config(args.config)
    refuse_if_running(config)
    root = read_secret_key(config.keys.root)
    key = PublicKey.from_id(args.key, "KEY").id
    if key == root.id:
        raise CliError("the root key is the origin's identity and cannot be revoked")
    store = open_store(config)
    try:
        record, _ = store.append_local(signer=root, origin=root.id, body=KeyRevokeBody(key),
                                       dist=Distribution(), actor="cli:key")
    finally:
        store.close()
    if read_secret_key(config.keys.signing).id == key:
        _point_config_at(config.path, config.keys.root.relative_to(config.base_dir))
    print_json({"revoked": key, "record": record.id, "seq": record.head.seq})
    return 0


def unfreeze(args: argparse.Namespace) -> int:
    """Operator decision after an equivocation or a restored backup has been resolved."""
    config = load_node_config(args.config)
    store = open_store(config)
    try:
        origin = PublicKey.from_id(args.origin, "ORIGIN").id if args.origin else None
        if origin is not None:
            store.unfreeze(origin, "cli")
        if origin is None or origin == read_secret_key(config.keys.root).id:
            store.unblock_signing("cli")
    finally:
        store.close()
    print("unfrozen; the running node sees this at once")
    return 0


def refuse_if_running(config: NodeConfig) -> None:
    """Commands that rewrite the store (key rotation, migration) need the node stopped: the
    data directory's lock names a running node's pid; the port check catches a node that
    runs on this config with another data directory."""
    if config.data_dir.is_dir():
        with hold_data_dir(config, "run this command (it rewrites the database)"):
            pass
    host = "127.0.0.1" if config.listen.host in WILDCARD_HOSTS else config.listen.host
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, config.listen.port)) == 0:
            raise CliError(f"a node is listening on {host}:{config.listen.port}; stop it "
                           "first (this command rewrites its database)")


def _point_config_at(config_path: Path, key_file: Path) -> None:
    """Set ``keys.signing`` in node.toml, keeping the rest of the file as written."""
    text = config_path.read_text()
    line = f'signing = "{key_file.as_posix()}"'
    section = KEYS_SECTION.search(text)
    if section is None:
        raise CliError(f"{config_path}: no [keys] section")
    start = section.end()
    next_section = text.find("\n[", start)
    end = len(text) if next_section == -1 else next_section
    body = text[start:end]
    body = (SIGNING_LINE.sub(line, body, count=1) if SIGNING_LINE.search(body)
            else f"\n{line}" + body)
    config_path.write_text(text[:start] + body + text[end:])
    load_node_config(config_path)
