"""``peers.toml``: who this node exchanges records with, and what it sends and accepts.

Loaded and validated whole (``load_peers_config``); edited by ``hashmesh peers add|remove``
through ``add_peer`` / ``remove_peer``, which validate the result before replacing the file.
The documented schema is ``configs/peers.example.toml``.
"""

from __future__ import annotations

import ipaddress
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from hashmesh.node.config.keyfile import atomic_write
from hashmesh.node.config.toml_reader import (
    CONTROL_CHARS,
    ConfigError,
    Table,
    check_first,
    parse_toml,
    read_text,
    read_toml,
    toml_value,
)
from hashmesh.protocol.keys import PublicKey
from hashmesh.protocol.records import JURISDICTION_PATTERN, LABEL_PATTERN, NAME_PATTERN

PEER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


# --- peers.toml ---------------------------------------------------------------------------

PEER_KEYS = frozenset({"name", "url", "node_key", "origin", "accept_origins", "send_lists",
                       "accept_lists", "send_labels", "accept_labels", "jurisdiction", "groups",
                       "allow_insecure_http"})
INSECURE_OPT_OUT = "allow_insecure_http"
VOUCHED = "vouched"


@dataclass(frozen=True)
class PeerConfig:
    """One peer: who it is (``node_key`` signs its requests) and what we exchange with it.

    ``accept_vouched`` means "accept any origin this peer serves" (``accept_origins =
    "vouched"`` in TOML) and then ``accept_origins`` is empty. ``send_lists`` /
    ``accept_lists`` of ``None`` mean all lists; an empty tuple means none. Empty label
    allowlists mean all labels. When built in code every field is taken as given; in TOML an
    absent ``accept_origins`` means the peer's own ``origin`` (or nothing, without one).

    ``url`` must be ``https://`` unless its host is a loopback address or
    ``allow_insecure_http`` is set (``check_peer_url``): over plain http an on-path attacker
    reads every body and can drop or replay answers.
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
    allow_insecure_http: bool = False

    @property
    def insecure(self) -> bool:
        """Plain http to a host that is not loopback (allowed only by the opt-out)."""
        return not is_secure_url(self.url)

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
    _names: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({p.name: p for p in self.peers}))
        object.__setattr__(self, "_by_node_key",
                           MappingProxyType({p.node_key.id: p for p in self.peers}))
        names: dict[str, str] = {}
        for peer in self.peers:
            if peer.origin is not None:
                names.setdefault(peer.origin.id, peer.name)
        object.__setattr__(self, "_names", MappingProxyType(names))

    def origin_name(self, origin: str) -> str | None:
        """The name of the first peer pinned to ``origin``: match answers' ``origin_name``."""
        return self._names.get(origin)

    def origin_names(self) -> dict[str, str]:
        """Every ``origin_name`` answer at once (handed to match workers)."""
        return dict(self._names)

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
    data = read_toml(path)
    try:
        return parse_peers_config(data)
    except ConfigError as exc:
        raise exc.in_file(path) from None


def parse_peers_config(data: Mapping[str, Any]) -> PeersConfig:
    """Validate an already-parsed ``peers.toml`` document."""
    top = Table(data, "", {"peer"}, what="key")
    peers: list[PeerConfig] = []
    seen_names: dict[str, int] = {}
    seen_keys: dict[str, int] = {}
    for index, entry in enumerate(top.tables("peer", PEER_KEYS)):
        peer = _parse_peer(entry)
        check_first(seen_names, peer.name, index, entry.at("name"), "peer name")
        check_first(seen_keys, peer.node_key.id, index, entry.at("node_key"), "node_key")
        peers.append(peer)
    return PeersConfig(tuple(peers))


def _parse_peer(entry: Table) -> PeerConfig:
    name = entry.string("name", pattern=PEER_NAME_PATTERN, what="peer name")
    insecure = entry.boolean(INSECURE_OPT_OUT, default=False)
    url = check_peer_url(check_url(entry.string("url"), entry.at("url")), insecure,
                         entry.at("url"))
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
        allow_insecure_http=insecure,
    )


def check_url(url: str, path: str) -> str:
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


def is_secure_url(url: str) -> bool:
    """``https://``, or ``http://`` to a loopback host (the traffic never leaves the machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_peer_url(url: str, allow_insecure_http: bool, path: str) -> str:
    """Refuse a plain-http peer URL off loopback unless the operator opted out for this peer."""
    if not allow_insecure_http and not is_secure_url(url):
        raise ConfigError(f"{url!r:.80} is plain http to a host that is not loopback; use "
                          f"https://, or set {INSECURE_OPT_OUT} = true for this peer to accept "
                          "that anyone on the path can read and alter the traffic", path)
    return url


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
        INSECURE_OPT_OUT: True if peer.allow_insecure_http else None,
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
        return toml_value(value)
    items = [toml_value(item) for item in value]
    one_line = "[" + ", ".join(items) + "]"
    if len(key) + 3 + len(one_line) <= 100:
        return one_line
    return "[\n" + "".join(f"    {item},\n" for item in items) + "]"


def _read_peers_for_edit(path: Path) -> tuple[str, dict[str, Any]]:
    """The current text and parsed document (empty if the file is absent), validated."""
    if not path.exists():
        return "", {}
    text = read_text(path)
    data = parse_toml(text, path)
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
