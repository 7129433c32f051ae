"""``node.toml``: the node's own configuration, TOML in, a validated frozen dataclass out.

Peers live in ``node/config/peers.py`` and the located TOML reading both share in
``node/config/toml_reader.py``.

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

import dataclasses
import hashlib
import hmac
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hashmesh.node.config.intake import INTAKE_KEYS, IntakeConfig, parse_intake
from hashmesh.node.config.peers import PeersConfig, check_url, load_peers_config
from hashmesh.node.config.toml_reader import (
    ConfigError,
    Table,
    check_key,
    check_unused,
    parse_toml,
    read_text,
    toml_value,
)
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.hashtypes import get_hash_type
from hashmesh.protocol.records import (
    GROUP_ID_PATTERN,
    MAX_ITEMS,
    MAX_RECORD_BYTES,
    NAME_PATTERN,
)

DEFAULT_PEERS_FILE = "peers.toml"
DATABASE_FILE = "hashmesh.db"
SCOPES: frozenset[str] = frozenset({"read", "write", "metrics", "audit"})
PEER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOKEN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
HOSTNAME_PATTERN = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 200
GIB = 2**30
# Addresses that listen everywhere but that no client can connect to.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
LOG_FORMATS = ("text", "json")


# --- node.toml ----------------------------------------------------------------------------

@dataclass(frozen=True)
class KeysConfig:
    """Paths of the node's secret keys; ``signing`` and ``node`` default to ``root``.

    ``origin`` is the root key's public id. With it, the root key file may be absent (kept
    offline): the node signs with ``signing``, which a ``key`` record already authorised.
    """

    root: Path
    signing: Path
    node: Path
    origin: str | None = None


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8470


@dataclass(frozen=True)
class MatchWorkersConfig:
    """Processes that serve only matching, on a listener of their own (``node/api/match_pool.py``).

    One event loop runs Python for one request at a time, so a node in one process answers
    matches with at most one core. Workers, each with its own copy of the index, answer from
    as many cores as there are processes.
    """

    processes: int
    host: str
    port: int


MAX_MATCH_PROCESSES = 64


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
    """Per-hash-type default thresholds that override the hash type's own default, and the
    verdict policy (``node/matching/verdicts.py`` says what each knob means)."""

    thresholds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    corroboration: int = 2  # independent 64-bit hashes that make a match without PDQ
    transforms: bool = True  # a PDQ hit through a flip, rotation or trimmed margin is a match
    dispute_origins: int = 2  # distinct trusted origins whose not_ncii quarantines an item
    # 64-bit types: how close a hit must be to corroborate (overrides the policy's defaults)
    corroborating: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def threshold_for(self, hash_type: str) -> int:
        override = self.thresholds.get(hash_type)
        return get_hash_type(hash_type).default_threshold if override is None else override


@dataclass(frozen=True)
class LimitsConfig:
    max_body_bytes: int = 1_048_576
    max_image_bytes: int = 20_971_520
    max_batch: int = 1000
    # items per add request (POST /v1/records, what `hashmesh add --from` sends at once): a
    # request is one transaction, and its fixed costs (commit, HTTP, hand-offs) were ~5 µs a
    # hash at 1,000 items; still bounded in bytes by max_body_bytes
    max_add_items: int = 10_000
    max_items_per_record: int = MAX_ITEMS
    max_page_records: int = 5_000
    max_page_bytes: int = 4_194_304
    # how often the node checkpoints the WAL, whether or not it writes itself: match
    # workers commit audit rows but never checkpoint (issue 18)
    wal_checkpoint_seconds: int = 10
    # unexpired request nonces remembered per peer (federation/nonces.py, NonceCache.per_key)
    max_nonces_per_peer: int = 20_000


@dataclass(frozen=True)
class CasesConfig:
    """``[cases]``: the limits on opening and reaching cases (``node/cases/``).

    A reference gets ``pin_attempts`` wrong PINs, then locks for ``lockout_seconds``, twice
    as long at each lock after that, up to ``max_lockout_seconds``; a correct PIN clears it.
    One client address gets ``client_attempts`` wrong tries (on any references) within
    ``client_window_seconds``. With 8-digit PINs and the defaults, someone who holds a
    reference guesses its PIN within a year with a chance of about 2 in 100,000.
    """

    pin_attempts: int = 5
    lockout_seconds: int = 900
    max_lockout_seconds: int = 86_400
    client_attempts: int = 30
    client_window_seconds: int = 3_600
    max_items: int = 1_000  # items (images or hashes) in one case


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: when the hashes of withdrawn and expired items are erased
    (``node/store/retention.py``). ``prune_after_days = 0`` keeps them for ever.

    The default, 30 days, is long enough for a feed consumer (TAXII, pytx) that was offline
    for weeks to still learn which hashes a revoke or expiry removed, and short enough that a
    withdrawn victim's hashes do not outlive the withdrawal by more than a month."""

    prune_after_days: int = 30
    sweep_minutes: int = 60

    @property
    def enabled(self) -> bool:
        return self.prune_after_days > 0


@dataclass(frozen=True)
class FederationConfig:
    """Where the peers file is; ``peers_file_is_default`` allows it to be absent (no peers)."""

    peers_file: Path
    peers_file_is_default: bool = True
    pull_interval_seconds: int = 30
    public_url: str | None = None
    ca_file: Path | None = None
    # A listener of its own for peers (``[federation.listen]``); None: peers use ``[listen]``
    listen: ListenConfig | None = None


@dataclass(frozen=True)
class CheckpointsConfig:
    """``[checkpoints]``: signed checkpoints of our log and witnesses (SPEC §20).

    ``witnesses`` maps an origin id (ours too) to the node keys that witness it: only origins
    listed there are judged witnessed and can raise the withholding alarms. ``witness_for``
    lists the origins whose checkpoints this node cosigns after checking them against the
    chain it holds. ``interval_seconds = 0`` signs no checkpoints (gossip still runs).
    """

    interval_seconds: int = 300
    max_age_seconds: int = 3600
    max_behind_seconds: int = 600
    quorum: int = 1
    witness_for: tuple[str, ...] = ()
    witnesses: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def witnesses_of(self, origin: str) -> frozenset[str]:
        return frozenset(self.witnesses.get(origin, ()))


@dataclass(frozen=True)
class ReceiptsConfig:
    """``[receipts]``: whether this node signs receipts of what it applies (SPEC §21), and how
    often: at most one receipt record per origin and distribution every ``interval_seconds``
    (more only when over 512 records are owed at once), and once more at shutdown."""

    enabled: bool = True
    interval_seconds: int = 5


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
    match_workers: MatchWorkersConfig | None = None
    # /metrics without a token: only for a listener that nobody else can reach
    public_metrics: bool = False
    # ``[log] format``: "text" or "json" (``hashmesh run --log-format`` overrides it)
    log_format: str = "text"
    # the file's text as loaded, handed to match workers so they run on the same config
    text: str = field(default="", repr=False, compare=False)
    # ``[store] url``: None is the embedded SQLite file in data_dir (node/store/interface.py)
    store_url: str | None = None
    # ``[cases]``: PIN attempts, lockouts and the size of a case
    cases: CasesConfig = field(default_factory=CasesConfig)
    # ``[intake]``: the public page that opens cases (node/config/intake.py)
    intake: IntakeConfig = IntakeConfig()
    retention: RetentionConfig = RetentionConfig()
    checkpoints: CheckpointsConfig = field(default_factory=CheckpointsConfig)
    receipts: ReceiptsConfig = field(default_factory=ReceiptsConfig)
    # ``[groups]``: local group name -> opaque 32-hex group id (SPEC §9.1)
    groups: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def group_id(self, name_or_id: str, path: str) -> str:
        """The group id for a local name, or a configured id itself; ``ConfigError`` else."""
        if name_or_id in self.groups:
            return self.groups[name_or_id]
        if name_or_id in self.groups.values():
            return name_or_id
        known = ", ".join(sorted(self.groups)) or "none configured"
        raise ConfigError(f"unknown sharing group {name_or_id!r:.80} (node.toml [groups] "
                          f"maps names to ids; known: {known})", path)

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def peer_listen(self) -> ListenConfig:
        """Where peers reach this node: ``[federation.listen]``, else ``[listen]``."""
        return self.federation.listen or self.listen

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
        """Load the configured peers file; a missing file means no peers only for the default.

        Each peer's ``groups`` (local names, SPEC §9.1) are resolved to group ids through
        ``[groups]``; a 32-hex value that is not a configured name is taken as an id.
        """
        peers = load_peers_config(self.federation.peers_file,
                                  missing_ok=self.federation.peers_file_is_default)
        return resolve_peer_groups(peers, self.groups, self.federation.peers_file)


def resolve_peer_groups(peers: PeersConfig, groups: Mapping[str, str],
                        file: Path) -> PeersConfig:
    """``peers`` with every group name replaced by its id (unknown names: ``ConfigError``)."""
    resolved = []
    for index, peer in enumerate(peers):
        ids = []
        for position, name in enumerate(peer.groups):
            if name in groups:
                ids.append(groups[name])
            elif GROUP_ID_PATTERN.fullmatch(name):
                ids.append(name)
            else:
                known = ", ".join(sorted(groups)) or "none configured"
                raise ConfigError(f"unknown sharing group {name!r:.80} (node.toml [groups] "
                                  f"maps names to ids; known: {known})",
                                  f"peer[{index}].groups[{position}]", file)
        resolved.append(dataclasses.replace(peer, groups=tuple(ids)))
    return PeersConfig(tuple(resolved))


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token, the form stored in ``[[api.tokens]] sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate ``node.toml``; raise ``ConfigError`` naming the file and the field."""
    return node_config_from_text(read_text(path), path)


def node_config_from_text(text: str, path: Path) -> NodeConfig:
    """``load_node_config`` of ``text`` as if read from ``path`` (match workers get the text
    the node loaded, not whatever the file holds when they start)."""
    try:
        return dataclasses.replace(parse_node_config(parse_toml(text, path), path=path),
                                   text=text)
    except ConfigError as exc:
        raise exc.in_file(path) from None


def parse_node_config(data: Mapping[str, Any], *, path: Path) -> NodeConfig:
    """Validate an already-parsed ``node.toml`` document that lives at ``path``."""
    base_dir = path.parent.absolute()
    top = Table(data, "", {"node", "keys", "listen", "tls", "api", "lists", "match",
                           "match_workers", "limits", "federation", "log", "store",
                           "cases", "intake", "retention", "checkpoints", "groups",
                           "receipts"},
                          what="section")
    # sections are read in file order, so the first fault reported is the first in the file
    node = top.table("node", {"name", "data_dir"}, required=True)
    name = node.display_name("name")
    data_dir = node.file_path("data_dir", base_dir, default="data")
    keys = _parse_keys(top.table("keys", {"root", "signing", "node", "origin"}, required=True),
                       base_dir)
    listen = _parse_listen(top.table("listen", {"host", "port"}))
    tls = _parse_tls(top.table("tls", {"cert", "key"}), base_dir)
    api = top.table("api", {"tokens", "public_metrics"})
    api_tokens = _parse_tokens(api)
    public_metrics = api.boolean("public_metrics", default=False)
    lists = _parse_lists(top.table("lists", {"default", "allowed"}))
    match = top.table("match", {"thresholds", "corroboration", "transforms", "dispute_origins",
                                "corroborating"})
    thresholds = _parse_thresholds(match.table("thresholds", None))
    defaults = MatchConfig()
    match_config = MatchConfig(
        thresholds,
        corroboration=match.integer("corroboration", 1, 4, default=defaults.corroboration),
        transforms=match.boolean("transforms", default=defaults.transforms),
        dispute_origins=match.integer("dispute_origins", 1, 1000,
                                      default=defaults.dispute_origins),
        corroborating=_parse_corroborating(match.table("corroborating", None)))
    match_workers = (_parse_match_workers(
        top.table("match_workers", {"processes", "host", "port"}), listen)
        if top.has("match_workers") else None)
    limits = _parse_limits(top.table("limits", set(LimitsConfig.__dataclass_fields__)))
    federation = _parse_federation(top.table("federation", {
        "peers_file", "public_url", "ca_file", "pull_interval_seconds", "listen"}), base_dir,
        listen, match_workers)
    log = top.table("log", {"format"})
    log_format = log.string("format", default="text")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"must be one of {', '.join(LOG_FORMATS)}, got {log_format!r:.40}",
                          log.at("format"))
    store = top.table("store", {"url"})
    store_url = check_store_url(store.string("url"), store.at("url")) if store.has("url") else None
    cases = _parse_cases(top.table("cases", set(CasesConfig.__dataclass_fields__)))
    intake_table = top.table("intake", INTAKE_KEYS)
    taken = {listen.port: "listen.port"}
    if federation.listen is not None:
        taken[federation.listen.port] = "federation.listen.port"
    if match_workers is not None:
        taken[match_workers.port] = "match_workers.port"
    intake = parse_intake(intake_table, listen.host, taken)
    if intake.enabled and not _is_host(intake.host):
        raise ConfigError(f"not an IP address or host name: {intake.host!r:.80}",
                          intake_table.at("host"))
    retention_table = top.table("retention", {"prune_after_days", "sweep_minutes"})
    retention = RetentionConfig(
        prune_after_days=retention_table.integer("prune_after_days", 0, 36_500,
                                                 default=RetentionConfig.prune_after_days),
        sweep_minutes=retention_table.integer("sweep_minutes", 1, 10_080,
                                              default=RetentionConfig.sweep_minutes))
    checkpoints = _parse_checkpoints(top.table("checkpoints", {
        "interval_seconds", "max_age_seconds", "max_behind_seconds", "quorum", "witness_for",
        "witnesses"}))
    groups = _parse_groups(top.table("groups", None))
    receipts = top.table("receipts", {"enabled", "interval_seconds"})
    receipts_config = ReceiptsConfig(
        enabled=receipts.boolean("enabled", default=ReceiptsConfig.enabled),
        interval_seconds=receipts.integer("interval_seconds", 1, 3600,
                                          default=ReceiptsConfig.interval_seconds))
    return NodeConfig(path=path, base_dir=base_dir, name=name, data_dir=data_dir, keys=keys,
                      listen=listen, tls=tls, api_tokens=api_tokens, lists=lists,
                      match=match_config, limits=limits, federation=federation,
                      match_workers=match_workers, public_metrics=public_metrics,
                      log_format=log_format, store_url=store_url, cases=cases,
                      intake=intake, retention=retention, checkpoints=checkpoints,
                      groups=groups, receipts=receipts_config)


def _parse_checkpoints(table: Table) -> CheckpointsConfig:
    d = CheckpointsConfig()
    witnesses_table = table.table("witnesses", None)
    witnesses: dict[str, tuple[str, ...]] = {}
    for origin in witnesses_table.keys():
        origin_id = check_key(origin, witnesses_table.at(origin)).id
        keys = witnesses_table.keys_list(origin, hint="an array of witness node keys")
        if not keys:
            raise ConfigError("needs at least 1 witness node key", witnesses_table.at(origin))
        witnesses[origin_id] = tuple(key.id for key in keys)
    return CheckpointsConfig(
        interval_seconds=table.integer("interval_seconds", 0, 86_400,
                                       default=d.interval_seconds),
        max_age_seconds=table.integer("max_age_seconds", 1, 30 * 86_400,
                                      default=d.max_age_seconds),
        max_behind_seconds=table.integer("max_behind_seconds", 1, 30 * 86_400,
                                         default=d.max_behind_seconds),
        quorum=table.integer("quorum", 1, 16, default=d.quorum),
        witness_for=tuple(key.id for key in (
            table.keys_list("witness_for", hint="an array of origin keys")
            if table.has("witness_for") else ())),
        witnesses=MappingProxyType(witnesses),
    )


def _parse_groups(table: Table) -> Mapping[str, str]:
    """``[groups]``: ``name = "<32 hex id>"``; names as list names, ids distinct."""
    groups: dict[str, str] = {}
    used: list[str] = []
    for name in table.keys():
        if not NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"invalid group name {name!r:.80} (must match "
                              f"{NAME_PATTERN.pattern})", table.at(name))
        group_id = table.string(name, pattern=GROUP_ID_PATTERN,
                                what="group id (32 lowercase hex characters, e.g. from "
                                     "`hashmesh group new`)")
        check_unused(used, group_id, table.at(name), "group id")
        used.append(group_id)
        groups[name] = group_id
    return MappingProxyType(groups)


STORE_URL_SCHEMES = ("postgresql://", "postgres://", "sqlite:")


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def check_store_url(url: str, at: str) -> str | None:
    """``[store] url``: a PostgreSQL connection URL, or ``sqlite:`` for the default file.

    Only the scheme is checked here (loading stays pure); the server is reached, and a bad
    host or password reported, when the node opens its store.
    """
    if url == "sqlite:":
        return None
    if not url.startswith(STORE_URL_SCHEMES[:2]):
        raise ConfigError("must be a postgresql:// URL (or \"sqlite:\" for the default "
                          f"file in node.data_dir), got {url[:40]!r}", at)
    return url


def _parse_keys(keys: Table, base_dir: Path) -> KeysConfig:
    root = keys.file_path("root", base_dir)
    signing = keys.file_path("signing", base_dir, default=root)
    origin = keys.key("origin").id if keys.has("origin") else None
    return KeysConfig(root=root, signing=signing,
                      node=keys.file_path("node", base_dir, default=root), origin=origin)


def _parse_listen(listen: Table) -> ListenConfig:
    return ListenConfig(host=_host(listen, ListenConfig.host),
                        port=listen.integer("port", 1, 65535, default=ListenConfig.port))


def _host(table: Table, default: str) -> str:
    host = table.string("host", default=default)
    if not _is_host(host):
        raise ConfigError(f"not an IP address or host name: {host!r:.80}", table.at("host"))
    return host


def _parse_match_workers(table: Table, listen: ListenConfig) -> MatchWorkersConfig:
    address = _extra_listener(table, listen, "the port the match workers listen on",
                              {listen.port: "listen.port"})
    processes = table.integer("processes", 1, MAX_MATCH_PROCESSES, default=2)
    return MatchWorkersConfig(processes=processes, host=address.host, port=address.port)


def _extra_listener(table: Table, listen: ListenConfig, port_is: str,
                    taken: dict[int, str]) -> ListenConfig:
    """A listener besides ``[listen]``: a required port not ``taken`` by another, and a host
    that defaults to ``listen.host``."""
    if not table.has("port"):
        raise ConfigError(f"required: {port_is}", table.at("port"))
    host = _host(table, listen.host)
    port = table.integer("port", 1, 65535)
    if port in taken:
        raise ConfigError(f"must differ from {taken[port]} ({port})", table.at("port"))
    return ListenConfig(host=host, port=port)


def _parse_tls(tls: Table, base_dir: Path) -> TlsConfig | None:
    if not tls.has("cert") and not tls.has("key"):
        return None
    for present, absent in (("cert", "key"), ("key", "cert")):
        if tls.has(present) and not tls.has(absent):
            raise ConfigError(f"required when tls.{present} is set (give both or neither)",
                              tls.at(absent))
    return TlsConfig(cert=tls.file_path("cert", base_dir), key=tls.file_path("key", base_dir))


def _parse_tokens(api: Table) -> tuple[ApiToken, ...]:
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
        check_unused([t.name for t in tokens], name, entry.at("name"), "token name")
        check_unused([t.sha256 for t in tokens], digest.lower(), entry.at("sha256"),
                      "token hash")
        tokens.append(ApiToken(name=name, sha256=digest.lower(), scopes=frozenset(scopes)))
    return tuple(tokens)


def _parse_lists(lists: Table) -> ListsConfig:
    default = lists.string("default", pattern=NAME_PATTERN, what="list name",
                           default=ListsConfig.default)
    allowed = lists.strings("allowed", pattern=NAME_PATTERN, what="list name", min_length=1,
                            default=(default,))
    if default not in allowed:
        raise ConfigError(f"{default!r} is not one of lists.allowed", lists.at("default"))
    return ListsConfig(default=default, allowed=allowed)


def _parse_thresholds(table: Table) -> Mapping[str, int]:
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


def _parse_corroborating(table: Table) -> Mapping[str, int]:
    """``[match.corroborating]``: only the 64-bit perceptual types."""
    found = _parse_thresholds(table)
    for name in found:
        if name not in ("phash", "dhash", "ahash", "whash"):
            raise ConfigError(f"{name} does not corroborate: only phash, dhash, ahash and "
                              "whash do", table.at(name))
    return found


def _parse_limits(limits: Table) -> LimitsConfig:
    d = LimitsConfig()
    return LimitsConfig(
        max_body_bytes=limits.integer("max_body_bytes", 1, GIB, default=d.max_body_bytes),
        max_image_bytes=limits.integer("max_image_bytes", 1, GIB, default=d.max_image_bytes),
        max_batch=limits.integer("max_batch", 1, 100_000, default=d.max_batch),
        max_add_items=limits.integer("max_add_items", 1, 100_000, default=d.max_add_items),
        max_items_per_record=limits.integer("max_items_per_record", 1, MAX_ITEMS,
                                            default=d.max_items_per_record),
        max_page_records=limits.integer("max_page_records", 1, 100_000,
                                        default=d.max_page_records),
        # a page must be able to carry at least one record of the largest allowed size
        max_page_bytes=limits.integer("max_page_bytes", MAX_RECORD_BYTES, GIB,
                                      default=d.max_page_bytes),
        wal_checkpoint_seconds=limits.integer("wal_checkpoint_seconds", 1, 3600,
                                              default=d.wal_checkpoint_seconds),
        max_nonces_per_peer=limits.integer("max_nonces_per_peer", 1, 1_000_000,
                                           default=d.max_nonces_per_peer),
    )


def _parse_cases(cases: Table) -> CasesConfig:
    d = CasesConfig()
    lockout = cases.integer("lockout_seconds", 1, 7 * 86_400, default=d.lockout_seconds)
    return CasesConfig(
        pin_attempts=cases.integer("pin_attempts", 1, 100, default=d.pin_attempts),
        lockout_seconds=lockout,
        max_lockout_seconds=cases.integer("max_lockout_seconds", lockout, 365 * 86_400,
                                          default=max(lockout, d.max_lockout_seconds)),
        client_attempts=cases.integer("client_attempts", 1, 100_000,
                                      default=d.client_attempts),
        client_window_seconds=cases.integer("client_window_seconds", 1, 7 * 86_400,
                                            default=d.client_window_seconds),
        max_items=cases.integer("max_items", 1, 100_000, default=d.max_items),
    )


def _parse_federation(federation: Table, base_dir: Path, listen: ListenConfig,
                      match_workers: MatchWorkersConfig | None) -> FederationConfig:
    raw = federation.string("peers_file", default=DEFAULT_PEERS_FILE)
    peer_listen = (_parse_peer_listen(federation.table("listen", {"host", "port"}), listen,
                                      match_workers)
                   if federation.has("listen") else None)
    return FederationConfig(
        peers_file=federation.file_path("peers_file", base_dir, default=DEFAULT_PEERS_FILE),
        peers_file_is_default=raw == DEFAULT_PEERS_FILE,
        pull_interval_seconds=federation.integer("pull_interval_seconds", 1, 86_400,
                                                 default=FederationConfig.pull_interval_seconds),
        public_url=(check_url(federation.string("public_url"), federation.at("public_url"))
                    if federation.has("public_url") else None),
        ca_file=(federation.file_path("ca_file", base_dir) if federation.has("ca_file")
                 else None),
        listen=peer_listen,
    )


def _parse_peer_listen(table: Table, listen: ListenConfig,
                       match_workers: MatchWorkersConfig | None) -> ListenConfig:
    """``[federation.listen]``: peers get a port of their own, and the local API stays on
    ``[listen]``, which can then be bound where only the organisation's services reach it."""
    taken = {listen.port: "listen.port"}
    if match_workers is not None:
        taken[match_workers.port] = "match_workers.port"
    return _extra_listener(table, listen, "the port peers connect to", taken)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return HOSTNAME_PATTERN.fullmatch(host) is not None
    return True


# --- rendering a fresh node.toml ----------------------------------------------------------

NODE_TEMPLATE = """\
# hashmesh node configuration, written by `hashmesh init`.
# Every field is documented in configs/node.example.toml. Relative paths are relative to
# the directory of this file.

[node]
name = {name}
data_dir = {data_dir}

[keys]
# Three keys: the root key is the origin's identity and only authorises or revokes signing
# keys, so once `init` has authorised the signing key it can be moved offline (keep a backup);
# `origin` lets the node run without it. See README, "Keys at rest".
origin = {origin}
root = "keys/root.key"
signing = "keys/signing.key"
node = "keys/node.key"

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
scopes = ["read", "write", "metrics", "audit"]

[lists]
default = "ncii"
allowed = ["ncii"]

[federation]
peers_file = "peers.toml"
pull_interval_seconds = 30
"""


def render_node_config(*, name: str, host: str, port: int, token_sha256: str,
                       origin: str, data_dir: str = "data") -> str:
    """A fresh, commented ``node.toml``; raises ``ConfigError`` if the values are invalid."""
    text = NODE_TEMPLATE.format(name=toml_value(name), data_dir=toml_value(data_dir),
                                host=toml_value(host), port=toml_value(port),
                                token_sha256=toml_value(token_sha256),
                                origin=toml_value(origin))
    parse_node_config(tomllib.loads(text), path=Path("node.toml"))
    return text
