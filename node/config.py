"""Node and peer configuration: TOML files in, validated frozen dataclasses out.

An operator's typo must fail loudly at load, not silently change who we share with, so:

* every value is checked when the file is loaded, and unknown keys are errors that name the
  key (with a "did you mean" hint);
* every error is a ``ConfigError`` whose text locates the fault the way an operator reads
  it: ``node.toml: listen.port: must be an integer between 1 and 65535, got 70000``;
* loading is pure and total: it reads one file and returns a new frozen object or raises.
  It does not look at key files, TLS files or the data directory; those are opened (with
  their own located errors) when the node starts. A reload validates the new file whole
  before anything swaps it in.

Relative paths inside a file are resolved against that file's directory, so a node runs the
same whatever directory it was started from.

``configs/node.example.toml`` and ``configs/peers.example.toml`` are the documented schema;
the tests load both.

    ConfigError(message, path)   a file cannot be read, is not TOML, or fails validation
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import hmac
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from node.keyfile import atomic_write
from protocol.errors import ProtocolError
from protocol.hashtypes import get_hash_type
from protocol.keys import PublicKey
from protocol.records import (
    JURISDICTION_PATTERN,
    LABEL_PATTERN,
    MAX_ITEMS,
    MAX_RECORD_BYTES,
    NAME_PATTERN,
)

DEFAULT_PEERS_FILE = "peers.toml"
DATABASE_FILE = "hashmesh.db"
SCOPES: frozenset[str] = frozenset({"read", "write"})
PEER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOKEN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
HOSTNAME_PATTERN = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 200
GIB = 2**30


class ConfigError(ValueError):
    """A configuration fault, located by ``file`` (as the operator named it) and ``path``.

    ``path`` is the field location inside the file (``peer[2].url``); ``reason`` says what
    is wrong. Validation code raises it without ``file``; the loader adds the file name.
    """

    def __init__(self, message: str, path: str = "", file: str | os.PathLike[str] | None = None
                 ) -> None:
        self.reason = message
        self.path = path
        self.file = None if file is None else str(file)
        super().__init__(": ".join(part for part in (self.file, path, message) if part))

    def in_file(self, file: str | os.PathLike[str]) -> ConfigError:
        """The same fault, located in ``file``."""
        return ConfigError(self.reason, self.path, file)


# --- node.toml ----------------------------------------------------------------------------

@dataclass(frozen=True)
class KeysConfig:
    """Paths of the node's secret keys; ``signing`` and ``node`` default to ``root``."""

    root: Path
    signing: Path
    node: Path


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8470


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ApiToken:
    """A local client's token, stored only as its SHA-256 so the config file holds no secret."""

    name: str
    sha256: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class ListsConfig:
    default: str = "ncii"
    allowed: tuple[str, ...] = ("ncii",)


@dataclass(frozen=True)
class MatchConfig:
    """Per-hash-type default thresholds that override the hash type's own default."""

    thresholds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def threshold_for(self, hash_type: str) -> int:
        override = self.thresholds.get(hash_type)
        return get_hash_type(hash_type).default_threshold if override is None else override


@dataclass(frozen=True)
class LimitsConfig:
    max_body_bytes: int = 1_048_576
    max_image_bytes: int = 20_971_520
    max_batch: int = 1000
    max_items_per_record: int = MAX_ITEMS
    max_page_records: int = 5_000
    max_page_bytes: int = 4_194_304


@dataclass(frozen=True)
class FederationConfig:
    """Where the peers file is; ``peers_file_is_default`` allows it to be absent (no peers)."""

    peers_file: Path
    peers_file_is_default: bool = True
    pull_interval_seconds: int = 30
    public_url: str | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class NodeConfig:
    """A whole, validated ``node.toml``. ``path`` is as given; ``base_dir`` is absolute."""

    path: Path
    base_dir: Path
    name: str
    data_dir: Path
    keys: KeysConfig
    listen: ListenConfig
    tls: TlsConfig | None
    api_tokens: tuple[ApiToken, ...]
    lists: ListsConfig
    match: MatchConfig
    limits: LimitsConfig
    federation: FederationConfig

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    def find_token(self, token: str) -> ApiToken | None:
        """The API token whose hash matches ``token``, compared in constant time.

        Every configured hash is compared (no early exit), so timing does not reveal which
        token, or how much of one, matched.
        """
        if not token:
            return None
        digest = hash_token(token).encode("ascii")
        found: ApiToken | None = None
        for candidate in self.api_tokens:
            if hmac.compare_digest(digest, candidate.sha256.encode("ascii")):
                found = candidate
        return found

    def load_peers(self) -> PeersConfig:
        """Load the configured peers file; a missing file means no peers only for the default."""
        return load_peers_config(self.federation.peers_file,
                                 missing_ok=self.federation.peers_file_is_default)


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token, the form stored in ``[[api.tokens]] sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate ``node.toml``; raise ``ConfigError`` naming the file and the field."""
    data = _read_toml(path)
    try:
        return parse_node_config(data, path=path)
    except ConfigError as exc:
        raise exc.in_file(path) from None


def parse_node_config(data: Mapping[str, Any], *, path: Path) -> NodeConfig:
    """Validate an already-parsed ``node.toml`` document that lives at ``path``."""
    base_dir = path.parent.absolute()
    top = _Table(data, "", {"node", "keys", "listen", "tls", "api", "lists", "match", "limits",
                            "federation"}, what="section")
    # sections are read in file order, so the first fault reported is the first in the file
    node = top.table("node", {"name", "data_dir"}, required=True)
    name = node.display_name("name")
    data_dir = node.file_path("data_dir", base_dir, default="data")
    keys = _parse_keys(top.table("keys", {"root", "signing", "node"}, required=True), base_dir)
    listen = _parse_listen(top.table("listen", {"host", "port"}))
    tls = _parse_tls(top.table("tls", {"cert", "key"}), base_dir)
    api_tokens = _parse_tokens(top.table("api", {"tokens"}))
    lists = _parse_lists(top.table("lists", {"default", "allowed"}))
    match = top.table("match", {"thresholds"})
    thresholds = _parse_thresholds(match.table("thresholds", None))
    limits = _parse_limits(top.table("limits", set(LimitsConfig.__dataclass_fields__)))
    federation = _parse_federation(top.table("federation", {"peers_file", "public_url", "ca_file",
                                                            "pull_interval_seconds"}), base_dir)
    return NodeConfig(path=path, base_dir=base_dir, name=name, data_dir=data_dir, keys=keys,
                      listen=listen, tls=tls, api_tokens=api_tokens, lists=lists,
                      match=MatchConfig(thresholds), limits=limits, federation=federation)


def _parse_keys(keys: _Table, base_dir: Path) -> KeysConfig:
    root = keys.file_path("root", base_dir)
    return KeysConfig(root=root,
                      signing=keys.file_path("signing", base_dir, default=root),
                      node=keys.file_path("node", base_dir, default=root))


def _parse_listen(listen: _Table) -> ListenConfig:
    host = listen.string("host", default=ListenConfig.host)
    if not _is_host(host):
        raise ConfigError(f"not an IP address or host name: {host!r:.80}", listen.at("host"))
    return ListenConfig(host=host, port=listen.integer("port", 1, 65535, default=ListenConfig.port))


def _parse_tls(tls: _Table, base_dir: Path) -> TlsConfig | None:
    if not tls.has("cert") and not tls.has("key"):
        return None
    for present, absent in (("cert", "key"), ("key", "cert")):
        if tls.has(present) and not tls.has(absent):
            raise ConfigError(f"required when tls.{present} is set (give both or neither)",
                              tls.at(absent))
    return TlsConfig(cert=tls.file_path("cert", base_dir), key=tls.file_path("key", base_dir))


def _parse_tokens(api: _Table) -> tuple[ApiToken, ...]:
    tokens: list[ApiToken] = []
    for entry in api.tables("tokens", {"name", "sha256", "scopes"}):
        name = entry.string("name", pattern=TOKEN_NAME_PATTERN, what="token name")
        digest = entry.string("sha256")
        if not SHA256_PATTERN.fullmatch(digest):
            raise ConfigError("must be the token's SHA-256 as 64 hex characters, not the token "
                              "itself (compute it with: printf %s \"$TOKEN\" | sha256sum)",
                              entry.at("sha256"))
        scopes = entry.strings("scopes", what="scope", choices=SCOPES, min_length=1,
                               default=None)
        _check_unused([t.name for t in tokens], name, entry.at("name"), "token name")
        _check_unused([t.sha256 for t in tokens], digest.lower(), entry.at("sha256"),
                      "token hash")
        tokens.append(ApiToken(name=name, sha256=digest.lower(), scopes=frozenset(scopes)))
    return tuple(tokens)


def _parse_lists(lists: _Table) -> ListsConfig:
    default = lists.string("default", pattern=NAME_PATTERN, what="list name",
                           default=ListsConfig.default)
    allowed = lists.strings("allowed", pattern=NAME_PATTERN, what="list name", min_length=1,
                            default=(default,))
    if default not in allowed:
        raise ConfigError(f"{default!r} is not one of lists.allowed", lists.at("default"))
    return ListsConfig(default=default, allowed=allowed)


def _parse_thresholds(table: _Table) -> Mapping[str, int]:
    thresholds: dict[str, int] = {}
    for key in table.keys():
        try:
            hash_type = get_hash_type(key, table.at(key))
        except ProtocolError as exc:
            raise ConfigError(exc.reason, exc.path) from None
        if hash_type.name in thresholds:
            raise ConfigError(f"duplicate threshold for {hash_type.name}", table.at(key))
        thresholds[hash_type.name] = table.integer(key, 0, hash_type.max_threshold)
    return MappingProxyType(thresholds)


def _parse_limits(limits: _Table) -> LimitsConfig:
    d = LimitsConfig()
    return LimitsConfig(
        max_body_bytes=limits.integer("max_body_bytes", 1, GIB, default=d.max_body_bytes),
        max_image_bytes=limits.integer("max_image_bytes", 1, GIB, default=d.max_image_bytes),
        max_batch=limits.integer("max_batch", 1, 100_000, default=d.max_batch),
        max_items_per_record=limits.integer("max_items_per_record", 1, MAX_ITEMS,
                                            default=d.max_items_per_record),
        max_page_records=limits.integer("max_page_records", 1, 100_000,
                                        default=d.max_page_records),
        # a page must be able to carry at least one record of the largest allowed size
        max_page_bytes=limits.integer("max_page_bytes", MAX_RECORD_BYTES, GIB,
                                      default=d.max_page_bytes),
    )


def _parse_federation(federation: _Table, base_dir: Path) -> FederationConfig:
    raw = federation.string("peers_file", default=DEFAULT_PEERS_FILE)
    return FederationConfig(
        peers_file=federation.file_path("peers_file", base_dir, default=DEFAULT_PEERS_FILE),
        peers_file_is_default=raw == DEFAULT_PEERS_FILE,
        pull_interval_seconds=federation.integer("pull_interval_seconds", 1, 86_400,
                                                 default=FederationConfig.pull_interval_seconds),
        public_url=(_check_url(federation.string("public_url"), federation.at("public_url"))
                    if federation.has("public_url") else None),
        ca_file=(federation.file_path("ca_file", base_dir) if federation.has("ca_file")
                 else None),
    )


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return HOSTNAME_PATTERN.fullmatch(host) is not None
    return True


# --- peers.toml ---------------------------------------------------------------------------

PEER_KEYS = frozenset({"name", "url", "node_key", "origin", "accept_origins", "send_lists",
                       "accept_lists", "send_labels", "accept_labels", "jurisdiction", "groups"})
VOUCHED = "vouched"


@dataclass(frozen=True)
class PeerConfig:
    """One peer: who it is (``node_key`` signs its requests) and what we exchange with it.

    ``accept_vouched`` means "accept any origin this peer serves" (``accept_origins =
    "vouched"`` in TOML) and then ``accept_origins`` is empty. ``send_lists`` /
    ``accept_lists`` of ``None`` mean all lists; an empty tuple means none. Empty label
    allowlists mean all labels. When built in code every field is taken as given; in TOML an
    absent ``accept_origins`` means the peer's own ``origin`` (or nothing, without one).
    """

    name: str
    url: str
    node_key: PublicKey
    origin: PublicKey | None = None
    accept_origins: tuple[PublicKey, ...] = ()
    accept_vouched: bool = False
    send_lists: tuple[str, ...] | None = None
    accept_lists: tuple[str, ...] | None = None
    send_labels: tuple[str, ...] = ()
    accept_labels: tuple[str, ...] = ()
    jurisdiction: str | None = None
    groups: tuple[str, ...] = ()

    def accepts_origin(self, origin: PublicKey | str) -> bool:
        """Whether we take records of ``origin`` (a key or its id) from this peer."""
        if self.accept_vouched:
            return True
        origin_id = origin.id if isinstance(origin, PublicKey) else origin
        return any(key.id == origin_id for key in self.accept_origins)

    def sends_list(self, name: str) -> bool:
        return self.send_lists is None or name in self.send_lists

    def accepts_list(self, name: str) -> bool:
        return self.accept_lists is None or name in self.accept_lists

    def sends_labels(self, labels: Iterable[str]) -> bool:
        """True when every label is on the send allowlist (or there is no allowlist)."""
        return _labels_allowed(self.send_labels, labels)

    def accepts_labels(self, labels: Iterable[str]) -> bool:
        """True when every label is on the accept allowlist (or there is no allowlist)."""
        return _labels_allowed(self.accept_labels, labels)


def _labels_allowed(allowlist: tuple[str, ...], labels: Iterable[str]) -> bool:
    # every label must be allowed: a record labelled beyond the allowlist does not pass
    return not allowlist or all(label in allowlist for label in labels)


@dataclass(frozen=True)
class PeersConfig:
    """All configured peers, in file order, with lookups by name and by node key."""

    peers: tuple[PeerConfig, ...] = ()
    _by_name: Mapping[str, PeerConfig] = field(init=False, repr=False, compare=False)
    _by_node_key: Mapping[str, PeerConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({p.name: p for p in self.peers}))
        object.__setattr__(self, "_by_node_key",
                           MappingProxyType({p.node_key.id: p for p in self.peers}))

    def by_name(self, name: str) -> PeerConfig | None:
        return self._by_name.get(name)

    def by_node_key(self, key: PublicKey | str) -> PeerConfig | None:
        """The peer whose requests ``key`` (or key id) signs, or ``None`` for a stranger."""
        return self._by_node_key.get(key.id if isinstance(key, PublicKey) else key)

    def __iter__(self) -> Iterator[PeerConfig]:
        return iter(self.peers)

    def __len__(self) -> int:
        return len(self.peers)


def load_peers_config(path: Path, *, missing_ok: bool = False) -> PeersConfig:
    """Read and validate ``peers.toml``.

    A missing file is an error unless ``missing_ok``: ``NodeConfig.load_peers`` passes it only
    when ``federation.peers_file`` is the default ``peers.toml``, so a fresh node runs alone
    until its first ``hashmesh peers add``, while a peers file the operator named explicitly
    (and perhaps misspelt) must exist.
    """
    if missing_ok and not path.exists():
        return PeersConfig()
    data = _read_toml(path)
    try:
        return parse_peers_config(data)
    except ConfigError as exc:
        raise exc.in_file(path) from None


def parse_peers_config(data: Mapping[str, Any]) -> PeersConfig:
    """Validate an already-parsed ``peers.toml`` document."""
    top = _Table(data, "", {"peer"}, what="key")
    peers: list[PeerConfig] = []
    seen_names: dict[str, int] = {}
    seen_keys: dict[str, int] = {}
    for index, entry in enumerate(top.tables("peer", PEER_KEYS)):
        peer = _parse_peer(entry)
        _check_first(seen_names, peer.name, index, entry.at("name"), "peer name")
        _check_first(seen_keys, peer.node_key.id, index, entry.at("node_key"), "node_key")
        peers.append(peer)
    return PeersConfig(tuple(peers))


def _parse_peer(entry: _Table) -> PeerConfig:
    name = entry.string("name", pattern=PEER_NAME_PATTERN, what="peer name")
    url = _check_url(entry.string("url"), entry.at("url"))
    node_key = entry.key("node_key")
    origin = entry.key("origin") if entry.has("origin") else None
    vouched = entry.get("accept_origins") == VOUCHED
    if vouched or not entry.has("accept_origins"):
        accept_origins: tuple[PublicKey, ...] = () if vouched or origin is None else (origin,)
    else:
        accept_origins = entry.keys_list(
            "accept_origins", hint=f"an array of origin keys or the string {VOUCHED!r}")
    return PeerConfig(
        name=name,
        url=url,
        node_key=node_key,
        origin=origin,
        accept_origins=accept_origins,
        accept_vouched=vouched,
        send_lists=entry.optional_strings("send_lists", pattern=NAME_PATTERN, what="list name"),
        accept_lists=entry.optional_strings("accept_lists", pattern=NAME_PATTERN,
                                            what="list name"),
        send_labels=entry.strings("send_labels", pattern=LABEL_PATTERN, what="label"),
        accept_labels=entry.strings("accept_labels", pattern=LABEL_PATTERN, what="label"),
        jurisdiction=(entry.string("jurisdiction", pattern=JURISDICTION_PATTERN,
                                   what="ISO 3166-1 alpha-2 code (upper case, e.g. 'AU')")
                      if entry.has("jurisdiction") else None),
        groups=entry.strings("groups", pattern=NAME_PATTERN, what="group name"),
    )


def _check_url(url: str, path: str) -> str:
    """An http(s) base URL without credentials, query or fragment; trailing '/' removed."""
    if CONTROL_CHARS.search(url) or " " in url:
        raise ConfigError("not an http(s) URL (contains spaces or control characters)", path)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"not an http(s) URL ({exc})", path) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r:.80}", path)
    if port == 0:
        raise ConfigError("not an http(s) URL (port 0)", path)
    if parts.username is not None or parts.password is not None:
        raise ConfigError("must not contain credentials (user:password@)", path)
    if "?" in url or "#" in url:
        raise ConfigError("must not have a query or fragment", path)
    return url.rstrip("/")


def peer_to_toml_dict(peer: PeerConfig) -> dict[str, Any]:
    """The ``[[peer]]`` table for ``peer``, omitting fields that are at their defaults.

    ``accept_origins`` is always written, because its TOML default depends on ``origin``.
    """
    result: dict[str, Any] = {"name": peer.name, "url": peer.url, "node_key": peer.node_key.id}
    if peer.origin is not None:
        result["origin"] = peer.origin.id
    result["accept_origins"] = (VOUCHED if peer.accept_vouched
                                else [key.id for key in peer.accept_origins])
    optional: dict[str, Any] = {
        "send_lists": None if peer.send_lists is None else list(peer.send_lists),
        "accept_lists": None if peer.accept_lists is None else list(peer.accept_lists),
        "send_labels": list(peer.send_labels) or None,
        "accept_labels": list(peer.accept_labels) or None,
        "jurisdiction": peer.jurisdiction,
        "groups": list(peer.groups) or None,
    }
    result.update({key: value for key, value in optional.items() if value is not None})
    return result


def add_peer(path: Path, peer: PeerConfig) -> None:
    """Append ``peer`` to the peers file (creating it), validating the whole result first.

    The file is re-rendered: its leading comment block is kept, but comments between and
    inside ``[[peer]]`` tables are lost. Other peers keep their keys and values
    exactly as written. On any error the file is left untouched.
    """
    text, data = _read_peers_for_edit(path)
    peers = [*data.get("peer", []), peer_to_toml_dict(peer)]
    _write_peers(path, text, {**data, "peer": peers})


def remove_peer(path: Path, name: str) -> None:
    """Remove the peer called ``name``; same re-rendering and guarantees as ``add_peer``."""
    text, data = _read_peers_for_edit(path)
    peers = [entry for entry in data.get("peer", []) if entry.get("name") != name]
    if len(peers) == len(data.get("peer", [])):
        raise ConfigError(f"no peer named {name!r}", "peer", path)
    _write_peers(path, text, {**data, "peer": peers})


def render_peers_config(data: Mapping[str, Any], header: str = "") -> str:
    """Render a validated peers document after ``header`` (comment lines, kept verbatim).

    One ``[[peer]]`` table per peer, keys in their stored order, short arrays on one line.
    """
    tables = ["[[peer]]\n" + "".join(f"{key} = {_toml_inline(key, value)}\n"
                                     for key, value in entry.items())
              for entry in data.get("peer", [])]
    body = "\n".join(tables)
    if header and body:
        return header.rstrip("\n") + "\n\n" + body
    return header or body


def _toml_inline(key: str, value: object) -> str:
    if not isinstance(value, list):
        return _toml_value(value)
    items = [_toml_value(item) for item in value]
    one_line = "[" + ", ".join(items) + "]"
    if len(key) + 3 + len(one_line) <= 100:
        return one_line
    return "[\n" + "".join(f"    {item},\n" for item in items) + "]"


def _read_peers_for_edit(path: Path) -> tuple[str, dict[str, Any]]:
    """The current text and parsed document (empty if the file is absent), validated."""
    if not path.exists():
        return "", {}
    text = _read_text(path)
    data = _parse_toml(text, path)
    try:
        parse_peers_config(data)
    except ConfigError as exc:
        raise exc.in_file(path) from None
    return text, data


def _write_peers(path: Path, old_text: str, data: Mapping[str, Any]) -> None:
    new_text = render_peers_config(data, _leading_comments(old_text))
    try:
        parse_peers_config(tomllib.loads(new_text))
    except ConfigError as exc:
        raise exc.in_file(path) from None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    try:
        atomic_write(path, new_text.encode("utf-8"), mode=mode, overwrite=True)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", "", path) from None


def _leading_comments(text: str) -> str:
    """The comment lines (and blank lines) at the top of a file, up to the first TOML line."""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines).strip("\n") + "\n" if any(ln.strip() for ln in lines) else ""


# --- rendering a fresh node.toml ----------------------------------------------------------

NODE_TEMPLATE = """\
# hashmesh node configuration, written by `hashmesh init`.
# Every field is documented in configs/node.example.toml. Relative paths are relative to
# the directory of this file.

[node]
name = {name}
data_dir = {data_dir}

[keys]
root = "keys/root.key"
# signing = "keys/signing.key"   # defaults to the root key
# node = "keys/node.key"         # defaults to the root key

[listen]
host = {host}
port = {port}

# [tls]
# cert = "tls/cert.pem"
# key = "tls/key.pem"

[api]
# Local clients send `Authorization: Bearer <token>`; only the token's SHA-256 is kept here.
[[api.tokens]]
name = "local"
sha256 = {token_sha256}
scopes = ["read", "write"]

[lists]
default = "ncii"
allowed = ["ncii"]

[federation]
peers_file = "peers.toml"
pull_interval_seconds = 30
"""


def render_node_config(*, name: str, host: str, port: int, token_sha256: str,
                       data_dir: str = "data") -> str:
    """A fresh, commented ``node.toml``; raises ``ConfigError`` if the values are invalid."""
    text = NODE_TEMPLATE.format(name=_toml_value(name), data_dir=_toml_value(data_dir),
                                host=_toml_value(host), port=_toml_value(port),
                                token_sha256=_toml_value(token_sha256))
    parse_node_config(tomllib.loads(text), path=Path("node.toml"))
    return text


def _toml_value(value: object) -> str:
    """One value in TOML syntax, escaped by tomli_w."""
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


# --- reading TOML -------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", "", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", "", path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (at byte {exc.start})", "", path) from None


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", "", path) from None


def _read_toml(path: Path) -> dict[str, Any]:
    return _parse_toml(_read_text(path), path)


def _check_unused(used: list[str], value: str, path: str, what: str) -> None:
    if value in used:
        raise ConfigError(f"duplicate {what} {value!r:.80}", path)


def _check_first(seen: dict[str, int], value: str, index: int, path: str, what: str) -> None:
    """Record ``value`` at ``index``; a second use is an error pointing at the first."""
    if value in seen:
        raise ConfigError(f"duplicate {what} {value!r:.80} (already used by peer[{seen[value]}])",
                          path)
    seen[value] = index


_MISSING: Any = object()


def _type_name(value: object) -> str:
    """A TOML value's type with its article, as an operator reading the error would say it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__


class _Table:
    """One TOML table being read under a schema; every read and every error is located.

    Unknown keys are rejected on construction, so a misspelt required key is reported as the
    typo it is ("unknown key 'prot', did you mean 'port'?") rather than as a missing key.
    """

    def __init__(self, value: object, path: str, known: Iterable[str], what: str = "key"
                 ) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"must be a table, got {_type_name(value)}", path)
        self._value: dict[str, Any] = value
        self.path = path
        allowed = frozenset(known)
        for key in value:
            if key not in allowed:
                raise ConfigError(_unknown_key_message(key, allowed, what), self.at(key))

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self._value

    def keys(self) -> list[str]:
        return list(self._value)

    def get(self, key: str) -> Any:
        return self._value.get(key, _MISSING)

    def _raw(self, key: str, default: Any) -> Any:
        if key in self._value:
            return self._value[key]
        if default is _MISSING:
            raise ConfigError("missing required key", self.at(key))
        return default

    def table(self, key: str, known: Iterable[str] | None, *, required: bool = False) -> _Table:
        """A sub-table (an empty one when absent and not ``required``)."""
        value = self._raw(key, _MISSING if required else {})
        if known is None:
            known = value.keys() if isinstance(value, dict) else ()
        return _Table(value, self.at(key), known)

    def tables(self, key: str, known: Iterable[str]) -> list[_Table]:
        """An array of tables (``[[key]]``), each checked against ``known``."""
        value = self._raw(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"must be an array of tables ([[{self.at(key)}]]), "
                              f"got {_type_name(value)}", self.at(key))
        return [_Table(entry, f"{self.at(key)}[{i}]", known) for i, entry in enumerate(value)]

    def string(self, key: str, *, pattern: re.Pattern[str] | None = None, what: str = "value",
               default: Any = _MISSING) -> str:
        return _check_string(self._raw(key, default), self.at(key), pattern, what)

    def display_name(self, key: str) -> str:
        value = self.string(key)
        if not value.strip() or len(value) > MAX_NAME_LENGTH or CONTROL_CHARS.search(value):
            raise ConfigError(f"must be 1 to {MAX_NAME_LENGTH} printable characters",
                              self.at(key))
        return value

    def integer(self, key: str, minimum: int, maximum: int, *, default: Any = _MISSING) -> int:
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            got = _type_name(value)
        elif not minimum <= value <= maximum:
            got = str(value)
        else:
            return value
        raise ConfigError(f"must be an integer between {minimum} and {maximum}, got {got}",
                          self.at(key))

    def file_path(self, key: str, base_dir: Path, *, default: Any = _MISSING) -> Path:
        """A file path, resolved against the config file's directory when relative."""
        value = self._raw(key, default)
        if isinstance(value, Path):
            return value
        text = _check_string(value, self.at(key), None, "path")
        if not text or "\x00" in text:
            raise ConfigError("must be a non-empty path", self.at(key))
        return base_dir / text

    def strings(self, key: str, *, pattern: re.Pattern[str] | None = None, what: str = "value",
                choices: frozenset[str] | None = None, min_length: int = 0,
                default: tuple[str, ...] | None = ()) -> tuple[str, ...]:
        """An array of distinct strings; ``default`` when absent (``None``: required)."""
        if key not in self._value:
            if default is None:
                raise ConfigError("missing required key", self.at(key))
            return default
        return self._string_array(key, pattern, what, choices, min_length)

    def optional_strings(self, key: str, *, pattern: re.Pattern[str] | None = None,
                         what: str = "value") -> tuple[str, ...] | None:
        """An array of distinct strings, or ``None`` when absent (meaning "all")."""
        if key not in self._value:
            return None
        return self._string_array(key, pattern, what, None, 0)

    def _string_array(self, key: str, pattern: re.Pattern[str] | None, what: str,
                      choices: frozenset[str] | None, min_length: int) -> tuple[str, ...]:
        value = self._value[key]
        path = self.at(key)
        if not isinstance(value, list):
            raise ConfigError(f"must be an array of strings, got {_type_name(value)}", path)
        if len(value) < min_length:
            raise ConfigError(f"needs at least {min_length} entries", path)
        items = tuple(_check_string(item, f"{path}[{i}]", pattern, what)
                      for i, item in enumerate(value))
        for i, item in enumerate(items):
            if choices is not None and item not in choices:
                raise ConfigError(f"unknown value {item!r:.80} (expected one of: "
                                  f"{', '.join(sorted(choices))})", f"{path}[{i}]")
            if item in items[:i]:
                raise ConfigError(f"duplicate {what} {item!r:.80}", f"{path}[{i}]")
        return items

    def key(self, key: str) -> PublicKey:
        return _check_key(self._raw(key, _MISSING), self.at(key))

    def keys_list(self, key: str, *, hint: str) -> tuple[PublicKey, ...]:
        value = self._raw(key, _MISSING)
        path = self.at(key)
        if not isinstance(value, list):
            raise ConfigError(f"must be {hint}, got {_type_name(value)}", path)
        keys = tuple(_check_key(item, f"{path}[{i}]") for i, item in enumerate(value))
        for i, item in enumerate(keys):
            if item in keys[:i]:
                raise ConfigError(f"duplicate key {item.id}", f"{path}[{i}]")
        return keys


def _check_string(value: object, path: str, pattern: re.Pattern[str] | None, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, got {_type_name(value)}", path)
    if pattern is not None and not pattern.fullmatch(value):
        raise ConfigError(f"invalid {what} {value!r:.80} (must match {pattern.pattern})", path)
    return value


def _check_key(value: object, path: str) -> PublicKey:
    try:
        return PublicKey.from_id(value, path)
    except ProtocolError as exc:
        raise ConfigError(exc.reason, exc.path) from None


def _unknown_key_message(key: str, known: frozenset[str], what: str) -> str:
    if key == "token":
        return ("unknown key 'token': store only the token's SHA-256, as 'sha256' "
                "(printf %s \"$TOKEN\" | sha256sum)")
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if close:
        return f"unknown {what} {key!r:.80}, did you mean {close[0]!r}?"
    return f"unknown {what} {key!r:.80} (expected one of: {', '.join(sorted(known))})"
