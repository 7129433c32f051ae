"""node.toml and peers.toml: the examples load, every fault is located, edits are atomic."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from hashmesh.node.config.node import (
    ApiToken,
    NodeConfig,
    hash_token,
    load_node_config,
    render_node_config,
)
from hashmesh.node.config.peers import (
    PeerConfig,
    PeersConfig,
    add_peer,
    load_peers_config,
    parse_peers_config,
    peer_to_toml_dict,
    remove_peer,
)
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.protocol.keys import PublicKey, SigningKey

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NODE_EXAMPLE = CONFIGS / "node.example.toml"
PEERS_EXAMPLE = CONFIGS / "peers.example.toml"

KEY_A = SigningKey(b"\x0a" * 32).id
KEY_B = SigningKey(b"\x0b" * 32).id
KEY_C = SigningKey(b"\x0c" * 32).id
TOKEN = "s3cret-token"
TOKEN_HASH = hash_token(TOKEN)

MINIMAL_NODE = """\
[node]
name = "Test Node"
[keys]
root = "keys/root.key"
"""


def peer_toml(name: str = "peer-a", url: str = "https://a.example:8470", node_key: str = KEY_A,
              extra: str = "") -> str:
    return f'[[peer]]\nname = "{name}"\nurl = "{url}"\nnode_key = "{node_key}"\n{extra}'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the examples --------------------------------------------------------------------------

def test_node_example_loads_with_documented_values() -> None:
    config = load_node_config(NODE_EXAMPLE)
    assert config.name == "Example Online Safety Commission"
    assert config.base_dir == CONFIGS
    assert config.data_dir == CONFIGS / "data"
    assert config.db_path == CONFIGS / "data" / "hashmesh.db"
    assert config.keys.root == CONFIGS / "keys/root.key"
    assert config.keys.signing == CONFIGS / "keys/signing.key"
    assert config.keys.node == CONFIGS / "keys/node.key"
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8470)
    assert config.tls is None
    assert config.api_tokens == (ApiToken("trust-and-safety", hash_token("example-token-change-me"),
                                          frozenset({"read", "write"})),)
    assert config.lists.default == "ncii" and config.lists.allowed == ("ncii",)
    assert dict(config.match.thresholds) == {"pdq": 31}
    assert config.limits.max_batch == 1000 and config.limits.max_page_bytes == 4_194_304
    assert config.federation.peers_file == CONFIGS / "peers.toml"
    assert config.federation.peers_file_is_default
    assert config.federation.pull_interval_seconds == 30
    assert config.match_workers is None and not config.public_metrics


def test_match_workers_are_off_unless_configured_and_default_to_two_on_the_listen_host(
        tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE)).match_workers is None
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE + (
        '[listen]\nhost = "127.0.0.2"\n[match_workers]\nport = 9000\n')))
    assert config.match_workers is not None
    assert (config.match_workers.processes, config.match_workers.host,
            config.match_workers.port) == (2, "127.0.0.2", 9000)


def test_peers_use_the_api_listener_unless_federation_listen_gives_them_their_own(
        tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE))
    assert config.federation.listen is None and config.peer_listen == config.listen
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE + (
        '[federation.listen]\nhost = "0.0.0.0"\nport = 8480\n')))
    assert (config.peer_listen.host, config.peer_listen.port) == ("0.0.0.0", 8480)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8470)


def test_node_example_documents_every_limit_at_its_default() -> None:
    from hashmesh.node.config.node import LimitsConfig
    assert load_node_config(NODE_EXAMPLE).limits == LimitsConfig()


def test_peers_example_loads_one_fully_described_peer() -> None:
    peers = load_peers_config(PEERS_EXAMPLE)
    assert len(peers) == 1
    (peer,) = peers
    assert peer.name == "commission-b"
    assert peer.url == "https://hashmesh.commission-b.example:8470"
    assert peer.origin is not None and peer.accepts_origin(peer.origin)
    assert len(peer.accept_origins) == 2 and not peer.accept_vouched
    assert peer.send_lists == ("ncii",) and peer.accept_lists == ("ncii",)
    assert peer.jurisdiction == "AU" and peer.groups == ("apac-helplines",)
    assert peers.by_node_key(peer.node_key) is peer


def test_example_files_document_every_key_they_use() -> None:
    # each key in the examples is preceded or followed by a comment explaining it
    for path in (NODE_EXAMPLE, PEERS_EXAMPLE):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "=" in line and not line.lstrip().startswith(("#", "[", '"')):
                nearby = lines[max(0, i - 3):i + 1]
                assert any("#" in other for other in nearby), f"{path.name}:{i + 1}: {line}"


# --- node.toml defaults and paths ---------------------------------------------------------

def test_minimal_node_config_takes_documented_defaults(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE))
    assert config.keys.signing == config.keys.root == config.keys.node
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8470)
    assert config.tls is None and config.api_tokens == ()
    assert config.lists.default == "ncii" and config.lists.allowed == ("ncii",)
    assert dict(config.match.thresholds) == {}
    assert config.data_dir == tmp_path / "data"
    assert config.federation.peers_file == tmp_path / "peers.toml"


def test_relative_paths_resolve_against_the_config_dir_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc" / "hashmesh"
    conf_dir.mkdir(parents=True)
    write(conf_dir, "node.toml", MINIMAL_NODE + '[tls]\ncert = "tls/c.pem"\nkey = "/abs/k.pem"\n'
          '[federation]\npeers_file = "../peers.toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_node_config(Path("../etc/hashmesh/node.toml"))
    assert config.path == Path("../etc/hashmesh/node.toml")
    assert config.base_dir.is_absolute()
    assert config.keys.root.resolve() == conf_dir / "keys/root.key"
    assert config.tls is not None
    assert config.tls.cert.resolve() == conf_dir / "tls/c.pem"
    assert config.tls.key == Path("/abs/k.pem")
    assert config.federation.peers_file.resolve() == tmp_path / "etc" / "peers.toml"
    assert not config.federation.peers_file_is_default


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE + "[match.thresholds]\n"
                                                                          "pdq = 20\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.match.thresholds["pdq"] = 63  # type: ignore[index]


def test_threshold_override_and_fallback_to_hash_type_default(tmp_path: Path) -> None:
    from hashmesh.protocol.hashtypes import get_hash_type
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE + "[match.thresholds]\n"
                                                                          "pdq = 20\n"))
    assert config.match.threshold_for("pdq") == 20
    assert config.match.threshold_for("phash") == get_hash_type("phash").default_threshold


# --- API tokens ---------------------------------------------------------------------------

def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def tokens_config(tmp_path: Path) -> NodeConfig:
    return load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE + f"""
[[api.tokens]]
name = "reader"
sha256 = "{hash_token('other-token')}"
scopes = ["read"]
[[api.tokens]]
name = "writer"
sha256 = "{TOKEN_HASH.upper()}"
scopes = ["read", "write"]
"""))


def test_find_token_returns_the_matching_token(tmp_path: Path) -> None:
    config = tokens_config(tmp_path)
    found = config.find_token(TOKEN)
    assert found is not None and found.name == "writer"
    assert found.sha256 == TOKEN_HASH  # normalised to lower case
    assert found.allows("write") and found.allows("read")
    reader = config.find_token("other-token")
    assert reader is not None and reader.name == "reader" and not reader.allows("write")


@pytest.mark.parametrize("candidate", ["", "s3cret-toke", TOKEN + " ", TOKEN_HASH])
def test_find_token_rejects_anything_but_the_exact_token(tmp_path: Path, candidate: str) -> None:
    assert tokens_config(tmp_path).find_token(candidate) is None


# --- located errors -----------------------------------------------------------------------

T = f'[[api.tokens]]\nname = "t"\nsha256 = "{TOKEN_HASH}"\nscopes = ["read"]\n'

NODE_ERRORS = [
    ("[retention]\nprune_after_days = -1\n",
     "retention.prune_after_days: must be an integer between 0 and 36500, got -1"),
    ("[retention]\nsweep_minutes = 0\n",
     "retention.sweep_minutes: must be an integer between 1 and 10080, got 0"),
    ("[retention]\nkeep = 3\n", "retention.keep: unknown key"),
    ("[listen]\nport = 70000\n",
     "listen.port: must be an integer between 1 and 65535, got 70000"),
    ("[listen]\nport = 0\n", "listen.port: must be an integer between 1 and 65535, got 0"),
    ('[listen]\nport = "8470"\n', "listen.port: must be an integer between 1 and 65535, got a "
                                  "string"),
    ("[listen]\nport = true\n", "listen.port: must be an integer between 1 and 65535, got a "
                                "boolean"),
    ("[listen]\nprot = 8470\n", "listen.prot: unknown key 'prot', did you mean 'port'?"),
    ('[listen]\nhost = "not a host!"\n', "listen.host: not an IP address or host name"),
    ('[nod]\nname = "x"\n', "nod: unknown section 'nod', did you mean 'node'?"),
    ('[tls]\ncert = "c.pem"\n', "tls.key: required when tls.cert is set"),
    ('[tls]\nkey = "k.pem"\n', "tls.cert: required when tls.key is set"),
    ('[tls]\ncert = "c.pem"\nkey = 1\n', "tls.key: must be a string, got an integer"),
    ('[[api.tokens]]\nname = "t"\nsha256 = "abc"\nscopes = ["read"]\n',
     "api.tokens[0].sha256: must be the token's SHA-256 as 64 hex characters"),
    (T + '[[api.tokens]]\nname = "u"\nsha256 = "x"\nscopes = ["read"]\n',
     "api.tokens[1].sha256: must be the token's SHA-256"),
    (T + T, "api.tokens[1].name: duplicate token name 't'"),
    (T + T.replace('"t"', '"u"'), "api.tokens[1].sha256: duplicate token hash"),
    (T.replace('["read"]', '["read", "admin"]'),
     "api.tokens[0].scopes[1]: unknown value 'admin' (expected one of: audit, metrics, read, "
     "write)"),
    (T.replace('["read"]', '["read", "read"]'), "api.tokens[0].scopes[1]: duplicate scope"),
    (T.replace('["read"]', "[]"), "api.tokens[0].scopes: needs at least 1 entries"),
    (T.replace('scopes = ["read"]\n', ""), "api.tokens[0].scopes: missing required key"),
    (T.replace('name = "t"', 'name = "has space"'), "api.tokens[0].name: invalid token name"),
    (T + 'token = "plaintext"\n', "api.tokens[0].token: unknown key 'token': store only the "
                                  "token's SHA-256"),
    ('[api.tokens]\nname = "t"\n', "api.tokens: must be an array of tables ([[api.tokens]])"),
    ('[lists]\ndefault = "csam"\nallowed = ["ncii"]\n',
     "lists.default: 'csam' is not one of lists.allowed"),
    ('[lists]\nallowed = ["NCII"]\n', "lists.allowed[0]: invalid list name 'NCII'"),
    ("[lists]\nallowed = []\n", "lists.allowed: needs at least 1 entries"),
    ('[lists]\nallowed = "ncii"\n', "lists.allowed: must be an array of strings, got a string"),
    ("[match.thresholds]\nfoo = 3\n", "match.thresholds.foo: "),
    ("[match.thresholds]\npdq = 64\n",
     "match.thresholds.pdq: must be an integer between 0 and 63, got 64"),
    ("[match.thresholds]\npdq = -1\n", "match.thresholds.pdq: must be an integer between 0"),
    ("[match.thresholds]\nsha256 = 1\n",
     "match.thresholds.sha256: must be an integer between 0 and 0, got 1"),
    ("[match]\nthreshold = 3\n", "match.threshold: unknown key 'threshold', did you mean "
                                 "'thresholds'?"),
    ("[limits]\nmax_batch = 0\n", "limits.max_batch: must be an integer between 1 and 100000"),
    ("[limits]\nmax_items_per_record = 257\n",
     "limits.max_items_per_record: must be an integer between 1 and 256, got 257"),
    ("[limits]\nmax_page_bytes = 1000\n",
     "limits.max_page_bytes: must be an integer between 65536"),
    ("[limits]\nmax_body = 1\n", "limits.max_body: unknown key 'max_body', did you mean"),
    ("[federation]\npull_interval_seconds = 1.5\n",
     "federation.pull_interval_seconds: must be an integer between 1 and 86400, got a float"),
    ('[federation]\npeers_file = ""\n', "federation.peers_file: must be a non-empty path"),
    ("[match_workers]\nprocesses = 2\n", "match_workers.port: required: the port the match "
                                          "workers listen on"),
    ("[match_workers]\nport = 8470\n", "match_workers.port: must differ from listen.port"),
    ("[match_workers]\nport = 8471\nprocesses = 0\n",
     "match_workers.processes: must be an integer between 1 and 64, got 0"),
    ('[match_workers]\nport = 8471\nhost = "a b"\n', "match_workers.host: not an IP address"),
    ("[match_workers]\nport = 8471\nworkers = 2\n", "match_workers.workers: unknown key"),
    ('[api]\npublic_metrics = "yes"\n', "api.public_metrics: must be true or false, got a "
                                          "string"),
    ("[federation.listen]\nhost = \"0.0.0.0\"\n",
     "federation.listen.port: required: the port peers connect to"),
    ("[federation.listen]\nport = 8470\n", "federation.listen.port: must differ from "
                                            "listen.port (8470)"),
    ("[match_workers]\nport = 9000\n[federation.listen]\nport = 9000\n",
     "federation.listen.port: must differ from match_workers.port (9000)"),
    ("[federation.listen]\nport = 9000\nhots = \"x\"\n",
     "federation.listen.hots: unknown key 'hots', did you mean 'host'?"),
]


@pytest.mark.parametrize(("snippet", "expected"), NODE_ERRORS)
def test_node_config_errors_name_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                snippet: str, expected: str) -> None:
    write(tmp_path, "node.toml", MINIMAL_NODE + snippet)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_node_config(Path("node.toml"))
    assert str(info.value).startswith("node.toml: " + expected)
    assert info.value.file == "node.toml"
    assert info.value.path and expected.startswith(info.value.path + ":")


WHOLE_NODE_ERRORS = [
    ('[keys]\nroot = "r.key"\n', "node: missing required key"),
    ('[node]\nname = "X"\n', "keys: missing required key"),
    ('node = "x"\n[keys]\nroot = "r"\n', "node: must be a table, got a string"),
    ("listen = 8470\n" + MINIMAL_NODE, "listen: must be a table, got an integer"),
    ('[node]\n[keys]\nroot = "r"\n', "node.name: missing required key"),
    ('[node]\nname = ""\n[keys]\nroot = "r"\n', "node.name: must be 1 to 200 printable"),
    ('[node]\nname = "a\\u0007b"\n[keys]\nroot = "r"\n', "node.name: must be 1 to 200"),
    ('[node]\nname = "X"\ndata_dir = []\n[keys]\nroot = "r"\n',
     "node.data_dir: must be a string, got an array"),
    ('[node]\nname = "X"\n[keys]\nroot = 5\n', "keys.root: must be a string, got an integer"),
    ('[node]\nname = "X"\n[keys]\nroot = ""\n', "keys.root: must be a non-empty path"),
    ('[node]\nname = "X"\n[keys]\nsigning = "s"\n', "keys.root: missing required key"),
    ('[node]\nname = "X"\n[keys]\nroots = "r"\n', "keys.roots: unknown key 'roots', did you mean"),
]


@pytest.mark.parametrize(("text", "expected"), WHOLE_NODE_ERRORS)
def test_node_config_structure_errors_are_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  text: str, expected: str) -> None:
    write(tmp_path, "node.toml", text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_node_config(Path("node.toml"))
    assert str(info.value).startswith("node.toml: " + expected)


def test_unknown_hash_type_threshold_is_reported_by_the_hash_type_registry(
        tmp_path: Path) -> None:
    path = write(tmp_path, "node.toml", MINIMAL_NODE + "[match.thresholds]\nfoo = 3\n")
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    assert info.value.path == "match.thresholds.foo"
    assert "foo" in info.value.reason


@pytest.mark.parametrize(("content", "expected"), [
    (b"[node\nname = 1\n", "node.toml: invalid TOML: "),
    (b'[node]\nname = "\xff"\n', "node.toml: not valid UTF-8 (at byte 15)"),
])
def test_unparseable_file_is_reported_with_its_name(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    content: bytes, expected: str) -> None:
    (tmp_path / "node.toml").write_bytes(content)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_node_config(Path("node.toml"))
    assert str(info.value).startswith(expected)


def test_missing_node_config_is_reported_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"node\.toml: file not found"):
        load_node_config(tmp_path / "node.toml")


PEER_ERRORS = [
    (peer_toml(url="ftp://a.example"), "peer[0].url: not an http(s) URL"),
    (peer_toml() + peer_toml("peer-b", url="a.example:8470", node_key=KEY_B),
     "peer[1].url: not an http(s) URL"),
    (peer_toml(url="https://a.example/?x=1"), "peer[0].url: must not have a query or fragment"),
    (peer_toml(url="https://a.example/#top"), "peer[0].url: must not have a query or fragment"),
    (peer_toml(url="https://u:p@a.example"), "peer[0].url: must not contain credentials"),
    (peer_toml(url="https://a.example:99999"), "peer[0].url: not an http(s) URL"),
    (peer_toml(url="https:///path"), "peer[0].url: not an http(s) URL"),
    (peer_toml(url="http://a.example:8470"),
     "peer[0].url: 'http://a.example:8470' is plain http to a host that is not loopback; use "
     "https://, or set allow_insecure_http = true"),
    (peer_toml(url="http://10.0.0.2", extra="allow_insecure_http = 1\n"),
     "peer[0].allow_insecure_http: "),
    (peer_toml(name="Commission B"), "peer[0].name: invalid peer name 'Commission B'"),
    (peer_toml() + peer_toml(node_key=KEY_B),
     "peer[1].name: duplicate peer name 'peer-a' (already used by peer[0])"),
    (peer_toml() + peer_toml("peer-b"),
     f"peer[1].node_key: duplicate node_key '{KEY_A}' (already used by peer[0])"),
    (peer_toml(node_key="ed25519:abc"), "peer[0].node_key: public key must be 32 bytes"),
    (peer_toml(node_key="abc"), "peer[0].node_key: expected 'ed25519:<base64url>'"),
    ('[[peer]]\nname = "a"\nurl = "https://a.example"\n', "peer[0].node_key: missing required"),
    (peer_toml(extra=f'origin = "{KEY_B}x"\n'), "peer[0].origin: "),
    (peer_toml(extra='accept_origins = "all"\n'),
     "peer[0].accept_origins: must be an array of origin keys or the string 'vouched', "
     "got a string"),
    (peer_toml(extra=f'accept_origins = ["{KEY_B}", "nope"]\n'), "peer[0].accept_origins[1]: "),
    (peer_toml(extra=f'accept_origins = ["{KEY_B}", "{KEY_B}"]\n'),
     "peer[0].accept_origins[1]: duplicate key"),
    (peer_toml(extra='jurisdiction = "au"\n'), "peer[0].jurisdiction: invalid ISO 3166-1"),
    (peer_toml(extra='jurisdiction = "AUS"\n'), "peer[0].jurisdiction: invalid ISO 3166-1"),
    (peer_toml(extra='groups = ["Bad Group"]\n'), "peer[0].groups[0]: invalid group name"),
    (peer_toml(extra='send_lists = "ncii"\n'),
     "peer[0].send_lists: must be an array of strings, got a string"),
    (peer_toml(extra='accept_labels = ["ok", "ok"]\n'),
     "peer[0].accept_labels[1]: duplicate label 'ok'"),
    (peer_toml(extra='send_labels = ["Bad!"]\n'), "peer[0].send_labels[0]: invalid label"),
    (peer_toml(extra='urls = "x"\n'), "peer[0].urls: unknown key 'urls', did you mean 'url'?"),
    ('[[peers]]\nname = "a"\n', "peers: unknown key 'peers', did you mean 'peer'?"),
    ("peer = 3\n", "peer: must be an array of tables ([[peer]]), got an integer"),
]


@pytest.mark.parametrize(("text", "expected"), PEER_ERRORS)
def test_peers_config_errors_name_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 text: str, expected: str) -> None:
    write(tmp_path, "peers.toml", text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_peers_config(Path("peers.toml"))
    assert str(info.value).startswith("peers.toml: " + expected)


# --- peers --------------------------------------------------------------------------------

def test_peer_defaults_accept_own_origin_and_all_lists(tmp_path: Path) -> None:
    peers = load_peers_config(write(tmp_path, "peers.toml", peer_toml(
        url="https://10.0.0.2:8470/", extra=f'origin = "{KEY_B}"\n')))
    (peer,) = peers
    assert peer.url == "https://10.0.0.2:8470"
    assert peer.accept_origins == (PublicKey.from_id(KEY_B),)
    assert peer.accepts_origin(KEY_B) and not peer.accepts_origin(KEY_C)
    assert peer.send_lists is None and peer.sends_list("anything")
    assert peer.accept_lists is None and peer.accepts_list("anything")
    assert peer.sends_labels(["x", "y"]) and peer.accepts_labels([])


def test_peer_without_origin_accepts_no_records_by_default(tmp_path: Path) -> None:
    (peer,) = load_peers_config(write(tmp_path, "peers.toml", peer_toml()))
    assert peer.accept_origins == () and not peer.accepts_origin(KEY_A)


def test_vouched_peer_accepts_any_origin(tmp_path: Path) -> None:
    (peer,) = load_peers_config(write(tmp_path, "peers.toml", peer_toml(
        extra='accept_origins = "vouched"\n')))
    assert peer.accept_vouched and peer.accepts_origin(KEY_C)


def test_list_and_label_policies_filter(tmp_path: Path) -> None:
    (peer,) = load_peers_config(write(tmp_path, "peers.toml", peer_toml(extra="""\
send_lists = []
accept_lists = ["ncii"]
send_labels = ["adult"]
""")))
    assert not peer.sends_list("ncii")
    assert peer.accepts_list("ncii") and not peer.accepts_list("other")
    assert peer.sends_labels(["adult"]) and peer.sends_labels([])
    assert not peer.sends_labels(["adult", "minor"])


def test_peers_lookup_by_name_and_node_key(tmp_path: Path) -> None:
    peers = load_peers_config(write(tmp_path, "peers.toml", peer_toml() + peer_toml(
        "peer-b", url="https://b.example", node_key=KEY_B)))
    b = peers.by_name("peer-b")
    assert b is not None and b.url == "https://b.example"
    assert peers.by_node_key(KEY_B) is b
    assert peers.by_node_key(PublicKey.from_id(KEY_B)) is b
    assert peers.by_node_key(KEY_C) is None and peers.by_name("peer-c") is None
    assert [p.name for p in peers] == ["peer-a", "peer-b"]


def test_default_peers_file_may_be_missing_but_a_named_one_may_not(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE))
    assert config.load_peers() == PeersConfig()
    named = load_node_config(write(tmp_path, "node2.toml",
                                   MINIMAL_NODE + '[federation]\npeers_file = "p.toml"\n'))
    with pytest.raises(ConfigError, match=r"p\.toml: file not found"):
        named.load_peers()


def test_node_config_loads_its_peers_file(tmp_path: Path) -> None:
    write(tmp_path, "peers.toml", peer_toml())
    config = load_node_config(write(tmp_path, "node.toml", MINIMAL_NODE))
    assert [p.name for p in config.load_peers()] == ["peer-a"]


@pytest.mark.parametrize(("url", "opt_out", "insecure"), [
    ("https://a.example", False, False),
    ("http://127.0.0.9:8470", False, False),
    ("http://localhost:8470", False, False),
    ("http://[::1]:8470", False, False),
    ("http://10.0.0.2:8470", True, True),
])
def test_plain_http_peer_needs_loopback_or_the_opt_out(tmp_path: Path, url: str, opt_out: bool,
                                                        insecure: bool) -> None:
    extra = "allow_insecure_http = true\n" if opt_out else ""
    (peer,) = load_peers_config(write(tmp_path, "peers.toml", peer_toml(url=url, extra=extra)))
    assert peer.allow_insecure_http is opt_out
    assert peer.insecure is insecure


FULL_PEER = PeerConfig(
    name="full", url="https://full.example", node_key=PublicKey.from_id(KEY_A),
    origin=PublicKey.from_id(KEY_B), accept_origins=(PublicKey.from_id(KEY_B),
                                                      PublicKey.from_id(KEY_C)),
    send_lists=("ncii",), accept_lists=(), send_labels=("adult",), accept_labels=("x:y",),
    jurisdiction="NZ", groups=("g1", "g2"))


@pytest.mark.parametrize("peer", [
    FULL_PEER,
    PeerConfig(name="min", url="https://min.example", node_key=PublicKey.from_id(KEY_A)),
    PeerConfig(name="v", url="http://v.example", node_key=PublicKey.from_id(KEY_A),
               origin=PublicKey.from_id(KEY_A), accept_vouched=True, allow_insecure_http=True),
    PeerConfig(name="o", url="https://o.example", node_key=PublicKey.from_id(KEY_A),
               origin=PublicKey.from_id(KEY_B)),  # origin but deliberately no accepted origins
])
def test_peer_to_toml_dict_round_trips(peer: PeerConfig) -> None:
    assert parse_peers_config({"peer": [peer_to_toml_dict(peer)]}).peers == (peer,)


# --- editing peers.toml -------------------------------------------------------------------

@pytest.fixture
def peers_file(tmp_path: Path) -> Path:
    path = tmp_path / "peers.toml"
    shutil.copy(PEERS_EXAMPLE, path)
    return path


def test_add_then_remove_peer_round_trips(peers_file: Path) -> None:
    before = load_peers_config(peers_file)
    add_peer(peers_file, FULL_PEER)
    after = load_peers_config(peers_file)
    assert after.peers == (*before.peers, FULL_PEER)
    text = peers_file.read_text()
    assert text.startswith("# hashmesh peers (example).\n")
    remove_peer(peers_file, "full")
    assert load_peers_config(peers_file) == before
    remove_peer(peers_file, "commission-b")
    assert load_peers_config(peers_file) == PeersConfig()
    assert peers_file.read_text().startswith("# hashmesh peers (example).\n")


def test_add_peer_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "peers.toml"
    add_peer(path, FULL_PEER)
    assert load_peers_config(path).peers == (FULL_PEER,)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_edits_keep_other_peers_exactly_as_written(tmp_path: Path) -> None:
    # absent keys stay absent, so their defaults keep their meaning
    path = write(tmp_path, "peers.toml", peer_toml(extra=f'origin = "{KEY_C}"\n'))
    add_peer(path, dataclasses.replace(FULL_PEER, node_key=PublicKey.from_id(KEY_B)))
    first = tomllib.loads(path.read_text())["peer"][0]
    assert "accept_origins" not in first


def test_edit_keeps_file_mode(peers_file: Path) -> None:
    peers_file.chmod(0o640)
    add_peer(peers_file, FULL_PEER)
    assert stat.S_IMODE(peers_file.stat().st_mode) == 0o640


@pytest.mark.parametrize(("peer", "expected"), [
    (dataclasses.replace(FULL_PEER, name="commission-b"),
     "peer[1].name: duplicate peer name 'commission-b' (already used by peer[0])"),
    (dataclasses.replace(FULL_PEER, url="ftp://x"), "peer[1].url: not an http(s) URL"),
    (dataclasses.replace(FULL_PEER, name="Bad Name"), "peer[1].name: invalid peer name"),
    (dataclasses.replace(FULL_PEER, jurisdiction="nz"), "peer[1].jurisdiction: invalid"),
])
def test_invalid_add_leaves_the_file_unchanged(peers_file: Path, peer: PeerConfig,
                                               expected: str) -> None:
    before = peers_file.read_bytes()
    with pytest.raises(ConfigError) as info:
        add_peer(peers_file, peer)
    assert str(info.value).startswith(f"{peers_file}: {expected}")
    assert peers_file.read_bytes() == before
    assert sorted(p.name for p in peers_file.parent.iterdir()) == ["peers.toml"]


def test_add_refuses_to_rewrite_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "peers.toml", peer_toml(url="ftp://x"))
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"peer\[0\]\.url: not an http\(s\) URL"):
        add_peer(path, FULL_PEER)
    assert path.read_bytes() == before


def test_remove_unknown_peer_is_an_error(peers_file: Path) -> None:
    before = peers_file.read_bytes()
    with pytest.raises(ConfigError, match="no peer named 'nobody'"):
        remove_peer(peers_file, "nobody")
    assert peers_file.read_bytes() == before


# --- hashmesh init ------------------------------------------------------------------------

def test_rendered_node_config_loads_with_the_given_values(tmp_path: Path) -> None:
    text = render_node_config(name='Commission "B" — Ōtautahi', host="0.0.0.0", port=9000,
                              token_sha256=TOKEN_HASH, data_dir="state", origin=KEY_B)
    assert text.startswith("# hashmesh node configuration")
    config = load_node_config(write(tmp_path, "node.toml", text))
    assert config.name == 'Commission "B" — Ōtautahi'
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 9000)
    assert config.data_dir == tmp_path / "state"
    token = config.find_token(TOKEN)
    assert token is not None and token.scopes == {"read", "write", "metrics", "audit"}
    keys = config.keys  # three separate keys: the root key can go offline
    assert len({keys.root, keys.signing, keys.node}) == 3 and keys.origin == KEY_B


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"port": 0}, "listen.port: must be an integer between 1 and 65535"),
    ({"host": "bad host"}, "listen.host: not an IP address or host name"),
    ({"token_sha256": TOKEN}, "api.tokens[0].sha256: must be the token's SHA-256"),
    ({"name": ""}, "node.name: must be 1 to 200 printable characters"),
])
def test_render_node_config_refuses_invalid_values(kwargs: dict[str, object],
                                                   expected: str) -> None:
    args: dict[str, object] = {"name": "N", "host": "127.0.0.1", "port": 8470,
                               "token_sha256": TOKEN_HASH, "origin": KEY_B, **kwargs}
    with pytest.raises(ConfigError) as info:
        render_node_config(**args)  # type: ignore[arg-type]
    assert str(info.value).startswith(expected)


def test_intake_is_off_by_default_and_its_faults_name_the_field() -> None:
    from hashmesh.node.config.node import parse_node_config

    base = {"node": {"name": "x"}, "keys": {"root": "r"}}
    path = Path("node.toml")
    intake = parse_node_config(base, path=path).intake
    assert not intake.enabled and intake.review
    on = parse_node_config(base | {"intake": {"enabled": True, "port": 9000}}, path=path)
    assert on.intake.enabled and on.intake.port == 9000 and on.intake.host == "127.0.0.1"
    for table, field in (({"enabled": True, "port": 8470}, "intake.port"),
                         ({"enabled": True, "review": "no"}, "intake.review"),
                         ({"max_hashes_per_case": 0}, "intake.max_hashes_per_case"),
                         ({"enabled": True, "host": "bad host!"}, "intake.host"),
                         ({"colour": "red"}, "intake.colour")):
        with pytest.raises(ConfigError) as refused:
            parse_node_config(base | {"intake": table}, path=path)
        assert str(refused.value).startswith(field), (field, str(refused.value))
