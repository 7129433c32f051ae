"""CLI commands that work on local files: init, run, id, hash, verify, export, import, peers."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from hashmesh.node.api.server import serve
from hashmesh.node.cli.keys import refuse_if_running
from hashmesh.node.cli.support import (
    CliError,
    cli_token_path,
    new_token,
    print_json,
    print_json_line,
    progress_bar,
)
from hashmesh.node.config.identity import Identity
from hashmesh.node.config.keyfile import atomic_write, write_secret_key
from hashmesh.node.config.node import (
    DEFAULT_PEERS_FILE,
    WILDCARD_HOSTS,
    NodeConfig,
    check_store_url,
    hash_token,
    load_node_config,
    parse_node_config,
    redact_url,
    render_node_config,
)
from hashmesh.node.config.peers import (
    PeerConfig,
    add_peer,
    load_peers_config,
    peer_to_toml_dict,
    remove_peer,
)
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.matching.hasher import ImageError, hash_file, iter_image_files
from hashmesh.node.runtime.logs import configure_logging
from hashmesh.node.store.interface import NodeStore, hold_data_dir, open_store
from hashmesh.node.store.migrate import migrate_v1, schema_version
from hashmesh.node.store.schema import SCHEMA_VERSION
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import PublicKey, SigningKey
from hashmesh.protocol.log import LogHead, check_next
from hashmesh.protocol.records import (
    NAME_PATTERN,
    Distribution,
    KeyBody,
    SignedRecord,
    new_group_id,
)
from hashmesh.protocol.signing import KeyRing, verify

PEERS_TEMPLATE = """\
# Peers of this hashmesh node. Edit with `hashmesh peers add|remove|list`, or by hand:
# a running node reloads this file on SIGHUP or when it changes.
# See configs/peers.example.toml for every field.
"""


def init(args: argparse.Namespace) -> int:
    config_path, token, origin = create_node_dir(args.directory, name=args.name,
                                                 host=args.host, port=args.port)
    print(f"created {config_path}")
    print(f"origin: {origin}")
    print(f"api token (shown once; a copy is in {cli_token_path(config_path)}): {token}")
    print(f"next: hashmesh run --config {config_path}")
    return 0


def create_node_dir(directory: Path, *, name: str, host: str = "127.0.0.1",
                    port: int = 8470) -> tuple[Path, str, str]:
    """Write a new node's config, peers file, three keys, CLI token and first record.

    Root, signing and node keys are separate, and the database starts with the ``key``
    record by which the root key authorises the signing key, so the root key can be moved
    offline at once (README, "Keys at rest").

    Returns the config path, the API token (the only time it exists in clear besides the
    0600 ``cli-token`` file) and the origin id.
    """
    config_path = directory / "node.toml"
    if config_path.exists():
        raise CliError(f"{config_path} already exists; refusing to overwrite a node")
    token = new_token()
    root, signer, node = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    text = render_node_config(name=name, host=host, port=port, token_sha256=hash_token(token),
                              origin=root.id)
    (directory / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
    for file_name, key in (("root.key", root), ("signing.key", signer), ("node.key", node)):
        write_secret_key(directory / "keys" / file_name, key)
    config = parse_node_config(tomllib.loads(text), path=config_path)
    store = open_store(config)  # the root key authorises the signer now: then it can go
    try:
        store.append_local(signer=root, origin=root.id, body=KeyBody(signer.id),
                           dist=Distribution(), actor="init")
    finally:
        store.close()
    atomic_write(cli_token_path(config_path), (token + "\n").encode(), mode=0o600,
                 overwrite=False)
    atomic_write(directory / DEFAULT_PEERS_FILE, PEERS_TEMPLATE.encode(), mode=0o644,
                 overwrite=False)
    atomic_write(config_path, text.encode(), mode=0o644, overwrite=False)
    return config_path, token, root.id


def run(args: argparse.Namespace) -> int:
    config = load_node_config(args.config)
    configure_logging(args.log_level, args.log_format or config.log_format)
    asyncio.run(serve(config))
    return 0


def group_new(args: argparse.Namespace) -> int:
    """Print a ``[groups]`` line naming a fresh random group id (SPEC §9.1)."""
    if not NAME_PATTERN.fullmatch(args.name):
        raise ConfigError(f"invalid group name {args.name!r:.80} (must match "
                          f"{NAME_PATTERN.pattern})", "name")
    print(f'{args.name} = "{new_group_id()}"')
    return 0


def show_id(args: argparse.Namespace) -> int:
    config = load_node_config(args.config)
    identity = Identity.load(config)
    node_key, origin = identity.node, identity.origin
    url = peer_url(config)
    peer_name = "".join(c if c.isalnum() else "-" for c in config.name.lower()).strip("-")
    print_json({"name": config.name, "origin": origin, "node_key": node_key.id, "url": url,
                "peers_toml": {"name": peer_name[:64] or "peer", "url": url,
                               "node_key": node_key.id, "origin": origin,
                               "accept_origins": [origin]}})
    return 0


def peer_url(config: NodeConfig) -> str:
    """The URL peers should use: ``federation.public_url``, else the peer listener's address
    (with a warning when that is a wildcard address no peer can dial)."""
    if config.federation.public_url:
        return config.federation.public_url
    listen = config.peer_listen
    if listen.host in WILDCARD_HOSTS:
        print(f"hashmesh: warning: peers cannot connect to {listen.host}; set "
              "federation.public_url in node.toml to the URL they should use", file=sys.stderr)
    return f"{'https' if config.tls else 'http'}://{listen.host}:{listen.port}"


def hash_paths(args: argparse.Namespace) -> int:
    files = list(_image_files(args.paths))
    show_bar = sys.stderr.isatty() and not args.no_progress
    failures = 0
    for path in tqdm(files, unit="image", disable=not show_bar, file=sys.stderr):
        try:
            hashes = hash_file(path)
        except (ImageError, OSError) as exc:
            failures += 1
            print_json_line({"path": str(path), "error": str(exc)})
            continue
        print_json_line({"path": str(path), "hashes": [
            {"type": h.type, "value": h.value, **({"quality": h.quality}
                                                   if h.quality is not None else {})}
            for h in hashes]})
    return 1 if failures else 0


def _image_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if not path.exists():
            raise CliError(f"{path}: no such file or directory")
    yield from iter_image_files(paths)


def verify_store(store: NodeStore) -> Iterator[str]:
    """Re-verify every stored record, origin by origin; yield one line per fault."""
    ring: KeyRing | None = None
    head: LogHead | None = None
    for raw in store.all_records():
        try:
            record = SignedRecord.from_bytes(raw)
        except ProtocolError as exc:
            yield f"unparseable record: {exc}"
            continue
        if ring is None or ring.origin != record.head.origin:
            ring, head = KeyRing(record.head.origin), None
        where = f"{record.head.origin} seq {record.head.seq}"
        try:
            verify(record, ring)
            check_next(head, record)
        except ProtocolError as exc:
            yield f"{where}: {exc.code}: {exc}"
        ring.apply(record)
        head = LogHead.of(record)


def verify_command(args: argparse.Namespace) -> int:
    if getattr(args, "index", False):
        from hashmesh.node.cli.remote import verify_index

        return verify_index(args)
    config = load_node_config(args.config)
    store = _open_existing_store(config)
    try:
        faults = list(verify_store(store))
        count = store.counts()["records"]
    finally:
        store.close()
    for fault in faults:
        print(fault)
    print(f"checked {count} records: {len(faults)} fault(s)")
    return 1 if faults else 0


def export(args: argparse.Namespace) -> int:
    config = load_node_config(args.config)
    store = _open_existing_store(config)
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        total = store.counts()["records"]
        with progress_bar(total, "records", "export") as bar:
            for raw in store.all_records():
                out.write(raw + b"\n")
                bar.update()
    finally:
        if args.output:
            out.close()
        store.close()
    return 0


def import_records(args: argparse.Namespace) -> int:
    config = load_node_config(args.config)
    # a running node would never see what we store (its index is loaded at start): refuse
    with hold_data_dir(config, "import into it (or add with `hashmesh add --from`, which "
                               "the running node takes in)"):
        store = open_store(config)
        try:
            imported, skipped = import_lines(store, args.input)
        finally:
            store.close()
    print(f"imported {imported} records, {skipped} already present")
    return 0


def import_lines(store: NodeStore, path: Path, batch: int = 1000) -> tuple[int, int]:
    """Verify records from an export file and store those that extend each origin's log."""
    imported = skipped = 0
    pending: list[SignedRecord] = []
    rings: dict[str, KeyRing] = {}
    heads: dict[str, LogHead | None] = {}
    with open(path, "rb") as lines, progress_bar(path.stat().st_size, "B", "import",
                                                  scale=True) as bar:
        for number, line in enumerate(lines, start=1):
            bar.update(len(line))
            record = SignedRecord.from_bytes(line.rstrip(b"\n"), f"{path.name}:{number}")
            origin = record.head.origin
            if origin not in rings:
                rings[origin] = store.keyring(origin)
                heads[origin] = store.head(origin)
            head = heads[origin]
            if head is not None and record.head.seq <= head.seq:
                if store.record_at(origin, record.head.seq) != record.raw:
                    raise CliError(f"{path.name}:{number}: conflicts with the stored record "
                                   f"at {origin} seq {record.head.seq}")
                skipped += 1
                continue
            verify(record, rings[origin], f"{path.name}:{number}")
            check_next(head, record, f"{path.name}:{number}")
            rings[origin].apply(record)
            heads[origin] = LogHead.of(record)
            pending.append(record)
            if len(pending) >= batch:
                store.ingest(pending, source="import")
                imported += len(pending)
                pending = []
    store.ingest(pending, source="import")
    return imported + len(pending), skipped


def migrate(args: argparse.Namespace) -> int:
    config = load_node_config(args.config)
    if args.to is not None:
        return _port(config, args.to)
    if not config.db_path.exists():
        raise CliError(f"{config.db_path}: no database yet (has the node run?)")
    version = schema_version(config.db_path)
    if version == SCHEMA_VERSION:
        print(f"{config.db_path} is at schema version {SCHEMA_VERSION}: nothing to do")
        return 0
    refuse_if_running(config)
    done = migrate_v1(config.db_path)
    print_json({"migrated": f"schema {version} -> {SCHEMA_VERSION}", "records": done.records,
                "entries": done.entries, "backup": str(done.backup)})
    return 0


def _port(config: NodeConfig, url: str) -> int:
    """``migrate --to``: copy the node's SQLite database into PostgreSQL, checked."""
    from hashmesh.node.store.port import port_to_postgres

    if check_store_url(url, "--to") is None:
        raise CliError("--to: give a postgresql:// URL to copy the node into")
    if not config.db_path.exists():
        raise CliError(f"{config.db_path}: no database yet (has the node run?)")
    refuse_if_running(config)
    checks = port_to_postgres(config.db_path, url)
    print_json({"copied_to": redact_url(url),
                "tables": {c.table: {"rows": c.rows, "sha256": c.sha256} for c in checks},
                "next": f'set [store] url = "{redact_url(url)}" in {config.path}'})
    return 0


def _open_existing_store(config: NodeConfig) -> NodeStore:
    if config.store_url is None and not config.db_path.exists():
        raise CliError(f"{config.db_path}: no database yet (has the node run?)")
    return open_store(config)


def _peers_path(args: argparse.Namespace) -> Path:
    return load_node_config(args.config).federation.peers_file


def peers_list(args: argparse.Namespace) -> int:
    peers = load_peers_config(_peers_path(args), missing_ok=True)
    print_json([peer_to_toml_dict(peer) for peer in peers])
    return 0


def peers_add(args: argparse.Namespace) -> int:
    try:
        origin = PublicKey.from_id(args.origin, "origin") if args.origin else None
        accept = tuple(PublicKey.from_id(k, "accept_origin") for k in args.accept_origin)
        if not accept and origin is not None and not args.accept_vouched:
            accept = (origin,)  # as in peers.toml: by default, the peer's own records
        peer = PeerConfig(
            name=args.name, url=args.url, node_key=PublicKey.from_id(args.node_key, "node_key"),
            origin=origin, accept_origins=accept,
            accept_vouched=args.accept_vouched,
            send_lists=tuple(args.send_list) if args.send_list else None,
            accept_lists=tuple(args.accept_list) if args.accept_list else None,
            jurisdiction=args.jurisdiction, groups=tuple(args.group),
            allow_insecure_http=args.allow_insecure_http,
        )
    except ProtocolError as exc:
        raise ConfigError(exc.reason, exc.path) from None
    add_peer(_peers_path(args), peer)
    print(f"added peer {args.name}")
    return 0


def peers_remove(args: argparse.Namespace) -> int:
    remove_peer(_peers_path(args), args.name)
    print(f"removed peer {args.name}")
    return 0
