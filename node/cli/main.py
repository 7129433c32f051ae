"""The ``hashmesh`` command line.

Offline commands (``init``, ``id``, ``hash``, ``verify``, ``export``, ``import``, ``peers``)
work on files; ``run`` serves the node; ``add``, ``revoke``, ``feedback``, ``match`` and
``status`` talk to the running node's local API. Images are always hashed locally: the CLI
sends hashes, never image bytes.

Expected errors print as one line, ``hashmesh: error: <what>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Where each expected error class lives. ``--help`` and the commands that only talk to a
# running node import none of these modules (numpy, PIL, numba and the aiohttp server cost
# ~0.6 s), so the classes are looked up only among modules already imported: an error whose
# module was never imported cannot have been raised.
EXPECTED_ERRORS = {
    "hashmesh.node.cli.support": "CliError",
    "hashmesh.node.cli.client": "ClientError",
    "hashmesh.node.config.toml_reader": "ConfigError",
    "hashmesh.node.config.keyfile": "KeyFileError",
    "hashmesh.protocol.errors": "ProtocolError",
    "hashmesh.node.matching.hasher": "ImageError",
    "hashmesh.node.store.sqlite": "StoreError",
    "hashmesh.node.store.schema": "SchemaVersionError",
    "hashmesh.node.store.migrate": "MigrationError",
    "hashmesh.node.store.lock": "DataDirLockedError",
    "hashmesh.node.api.match_pool": "MatchPoolError",
}
DEFAULT_CONFIG = "node.toml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    logging.basicConfig(level=getattr(args, "log_level", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = resolve(args.handler)(args)
    except Exception as exc:
        if not isinstance(exc, expected_errors()):
            raise
        print(f"hashmesh: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


def expected_errors() -> tuple[type[BaseException], ...]:
    loaded = [getattr(sys.modules[module], name) for module, name in EXPECTED_ERRORS.items()
              if module in sys.modules]
    return (OSError, *loaded)


def resolve(handler: str) -> Callable[[argparse.Namespace], int | None]:
    """``"local.init"`` -> ``hashmesh.node.cli.local.init``, imported only when it runs."""
    module, _, function = handler.rpartition(".")
    command: Callable[[argparse.Namespace], int | None] = getattr(
        importlib.import_module(f"hashmesh.node.cli.{module}"), function)
    return command


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hashmesh",
        description="Federated hash-sharing node against non-consensual intimate image abuse.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in (_init, _run, _id, _hash, _add, _revoke, _feedback, _match, _status,
                     _case, _verify, _export, _import, _migrate, _profile, _peers, _key,
                     _unfreeze, _audit, _report, _group):
        register(sub)
    return parser


Sub = Any


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path,
                   default=Path(os.environ.get("HASHMESH_CONFIG", DEFAULT_CONFIG)),
                   help="node config file (default: $HASHMESH_CONFIG or ./node.toml)")


def _client_args(p: argparse.ArgumentParser) -> None:
    _config_arg(p)
    p.add_argument("--url", help="node URL (default: the config's listen address)")
    p.add_argument("--token", default=os.environ.get("HASHMESH_TOKEN"),
                   help="API token (default: $HASHMESH_TOKEN, else the cli-token file "
                        "beside the config)")


def _command(sub: Sub, name: str, handler: str,
             help_text: str, description: str | None = None) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text,
                                                description=description or help_text)
    p.set_defaults(handler=handler)
    return p


def _init(sub: Sub) -> None:
    p = _command(sub, "init", "local.init",
                 "create a node directory: config, keys (0600) and an API token",
                 "Create DIR/node.toml, DIR/peers.toml, separate root, signing and node keys in "
                 "DIR/keys (the root key can then go offline) and an API token. "
                 "Prints the origin id and the token (shown once; a copy for the CLI is kept "
                 "in DIR/cli-token, mode 0600).")
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--name", default="My hashmesh node",
                   help="display name shown in match provenance")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="listen port (default 8470)")


def _run(sub: Sub) -> None:
    p = _command(sub, "run", "local.run", "serve the node (local API and federation)")
    _config_arg(p)
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", choices=["text", "json"],
                   help="log lines as text or JSON objects (default: [log] format in the "
                        "config, else text); each line of a request carries its request id")


def _id(sub: Sub) -> None:
    p = _command(sub, "id", "local.show_id",
                 "print what a peer needs to add this node (origin, node key, URL)")
    _config_arg(p)


def _hash(sub: Sub) -> None:
    p = _command(sub, "hash", "local.hash_paths",
                 "hash images locally; prints JSON lines; needs no node and uploads nothing",
                 "Hash image files and folders (recursively). Prints one JSON line per image. "
                 "Runs entirely on this machine: no node is needed and nothing is uploaded.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")


def _add(sub: Sub) -> None:
    p = _command(sub, "add", "remote.add",
                 "add images (hashed locally) or TYPE:VALUE hashes to the node",
                 "Each image file, and each TYPE:VALUE argument, becomes one item. Images are "
                 "hashed on this machine; only hashes are sent.")
    _client_args(p)
    p.add_argument("inputs", nargs="*", metavar="FILE|DIR|TYPE:VALUE")
    p.add_argument("--from", dest="from_file", type=Path, metavar="LIST",
                   help="add every hash of a hash list: CSV (ours, python-threatexchange, "
                        "StopNCII), JSON lines, or TYPE VALUE lines; one item per hash")
    p.add_argument("--type", dest="default_type",
                   help="with --from: the hash type of lines that hold only a value")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _item_args(p)


def _item_args(p: argparse.ArgumentParser) -> None:
    """What every item added by ``add`` or ``case open`` shares, and how far it travels."""
    p.add_argument("--list", dest="list_name", help="list name (default: the node's default)")
    p.add_argument("--label", action="append", default=[], help="label (repeatable)")
    p.add_argument("--tier", default="victim_submitted",
                   choices=["victim_submitted", "helpline_verified", "platform_confirmed"])
    p.add_argument("--scope", default="all", choices=["all", "group", "peers"],
                   help="how far the record may travel (default: all)")
    p.add_argument("--group", help="sharing group, with --scope group")
    p.add_argument("--jurisdiction", action="append", default=[],
                   help="ISO 3166-1 alpha-2 code restricting distribution (repeatable)")
    p.add_argument("--expires", type=int, help="expiry, ms since the epoch")


def _revoke(sub: Sub) -> None:
    p = _command(sub, "revoke", "remote.revoke",
                 "revoke this node's records or items (REF is a record id or ID/INDEX)")
    _client_args(p)
    p.add_argument("refs", nargs="+", metavar="REF")
    p.add_argument("--reason", default="withdrawn",
                   choices=["withdrawn", "erroneous", "expired", "legal_order", "other"])


def _feedback(sub: Sub) -> None:
    p = _command(sub, "feedback", "remote.feedback",
                 "record a verdict on a record or item")
    _client_args(p)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--verdict", required=True,
                   choices=["confirmed", "not_ncii", "disputed", "actioned"])
    p.add_argument("--note", help="short note (at most 280 characters)")


def _match(sub: Sub) -> None:
    p = _command(sub, "match", "remote.match",
                 "match images (hashed locally) or TYPE:VALUE hashes against the node; "
                 "exit 0 only on the verdict 'match'")
    _client_args(p)
    p.add_argument("inputs", nargs="+", metavar="FILE|TYPE:VALUE")
    p.add_argument("--threshold", action="append", default=[], metavar="TYPE=N",
                   help="per-type threshold override, e.g. pdq=40 (repeatable)")
    p.add_argument("--list", dest="lists", action="append", help="only match these lists")
    p.add_argument("--corroboration", type=int, metavar="N",
                   help="ask for a stricter policy: N independent 64-bit hashes for a match")
    p.add_argument("--no-transforms", action="store_true",
                   help="ask for a stricter policy: a flip, rotation or trimmed margin is weak")


def _status(sub: Sub) -> None:
    p = _command(sub, "status", "remote.status", "show the running node's status")
    _client_args(p)


def _case(sub: Sub) -> None:
    p = sub.add_parser(
        "case", help="open a case for one person; its status and withdrawal by reference and PIN",
        description="A case groups the records made for one person. Opening one gives a case "
                    "reference and a PIN, shown once: with both, and no account, the person "
                    "(or a helpline for them) sees where the case is active and withdraws it. "
                    "The node keeps neither in clear.")
    cases = p.add_subparsers(title="case commands", metavar="ACTION")
    opening = _command(
        cases, "open", "cases.open_case", "open a case from images (hashed here) or hashes",
        "Each image file, and each TYPE:VALUE argument, becomes one item of the case. Images "
        "are hashed on this machine; only hashes are sent. Prints the case reference and PIN "
        "once: give them to the person, who needs both to check or withdraw the case.")
    _client_args(opening)
    opening.add_argument("inputs", nargs="+", metavar="FILE|DIR|TYPE:VALUE")
    opening.add_argument("--review", action="store_true",
                         help="hold the case for review: nothing is signed or shared until "
                              "`hashmesh case approve`")
    opening.add_argument("--json", action="store_true", help="print the answer as JSON")
    _item_args(opening)
    for name, handler, text in (
            ("status", "cases.case_status",
             "where a case is active, what was reported back, how far a withdrawal has gone"),
            ("withdraw", "cases.withdraw_case",
             "withdraw a case: every node is asked to stop matching its images (final)")):
        action = _command(cases, name, handler, text,
                          f"{text[0].upper()}{text[1:]}. Asks for the PIN (it is never taken as "
                          "an argument, which other users of the machine could see). Needs no "
                          "API token.")
        _config_arg(action)
        action.add_argument("--url", help="node URL (default: the config's listen address)")
        action.add_argument("reference", metavar="REFERENCE",
                            help="the case reference, e.g. 7KQ2-M9XD-4HTR-B3ZP")
        action.add_argument("--pin-stdin", action="store_true",
                            help="read the PIN from the first line of standard input")
        action.add_argument("--json", action="store_true", help="print the status as JSON")
        action.add_argument("--lang", default="en", choices=["en", "fr"],
                            help="language of the plain-words status (default: en)")
    pending = _command(cases, "pending", "cases.pending",
                       "list the cases waiting for review (opened with review on)")
    _client_args(pending)
    for name, handler, text in (
            ("approve", "cases.approve", "sign and share a case waiting for review"),
            ("reject", "cases.reject", "discard a case waiting for review, with its hashes")):
        action = _command(cases, name, handler, text)
        _client_args(action)
        action.add_argument("case_id", metavar="CASE_ID",
                            help="the case's id from `hashmesh case pending` (not its reference)")


def _verify(sub: Sub) -> None:
    p = _command(sub, "verify", "local.verify_command",
                 "re-check every stored signature and hash chain; exit 1 on any fault")
    _client_args(p)
    p.add_argument("--index", action="store_true",
                   help="instead, ask the running node whether its match index holds exactly "
                        "the hashes its store has in force")


def _export(sub: Sub) -> None:
    p = _command(sub, "export", "local.export",
                 "write every stored record as JSON lines (exact signed bytes)")
    _config_arg(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")


def _import(sub: Sub) -> None:
    p = _command(sub, "import", "local.import_records",
                 "verify and store records from an export (run with the node stopped)")
    _config_arg(p)
    p.add_argument("input", type=Path, metavar="FILE")


def _migrate(sub: Sub) -> None:
    p = _command(sub, "migrate", "local.migrate",
                 "upgrade the database to this version's schema, or copy it to PostgreSQL "
                 "(node stopped)",
                 "Copy a schema version 1 database into a new version 2 file, check the copy "
                 "and swap it in; the old file is kept as hashmesh.db.v1-backup. With --to, "
                 "copy the SQLite database into an empty PostgreSQL database instead, "
                 "checked table by table (row counts and a SHA-256 of the rows); then set "
                 "[store] url in node.toml to that URL.")
    _config_arg(p)
    p.add_argument("--to", metavar="URL",
                   help="postgresql://user:password@host/database to copy the node into")


def _profile(sub: Sub) -> None:
    p = sub.add_parser("profile", help="sign this origin's profile (name, jurisdiction, "
                       "contact), which travels with its log",
                       description="Other nodes show the profile as self-declared, unless "
                                   "their peers.toml pins this origin.")
    profile = p.add_subparsers(title="profile commands", metavar="ACTION")
    setting = _command(profile, "set", "remote.profile_set",
                       "sign a new profile (the latest one is in force)")
    _client_args(setting)
    setting.add_argument("--name", required=True, help="display name (at most 64 characters)")
    setting.add_argument("--jurisdiction", help="ISO 3166-1 alpha-2 code (e.g. DE)")
    setting.add_argument("--contact", help="how to reach the operator (at most 128 "
                                           "characters, e.g. an e-mail address or URL)")


def _peers(sub: Sub) -> None:
    p = sub.add_parser("peers", help="list, add or remove peers in peers.toml",
                       description="Edit the peers file; a running node picks changes up "
                                   "without a restart.")
    peers = p.add_subparsers(title="peers commands", metavar="ACTION")
    listing = _command(peers, "list", "local.peers_list", "list configured peers")
    _config_arg(listing)
    adding = _command(peers, "add", "local.peers_add", "add a peer")
    _config_arg(adding)
    adding.add_argument("name")
    adding.add_argument("--url", required=True)
    adding.add_argument("--node-key", required=True, help="ed25519:... key of its requests")
    adding.add_argument("--origin", help="the peer's own origin (root) key, if it publishes")
    adding.add_argument("--accept-origin", action="append", default=[],
                        help="origin whose records we accept from it (repeatable; "
                             "default: the peer's --origin)")
    adding.add_argument("--accept-vouched", action="store_true",
                        help="accept any origin the peer serves")
    adding.add_argument("--send-list", action="append", help="lists we send (default: all)")
    adding.add_argument("--accept-list", action="append",
                        help="lists we accept (default: all)")
    adding.add_argument("--jurisdiction", help="ISO 3166-1 alpha-2 code of the peer")
    adding.add_argument("--group", action="append", default=[],
                        help="sharing group it belongs to")
    adding.add_argument("--allow-insecure-http", action="store_true",
                        help="allow a plain http:// URL to a host that is not loopback "
                             "(peers.toml: allow_insecure_http = true; logged at every start)")
    removing = _command(peers, "remove", "local.peers_remove", "remove a peer")
    _config_arg(removing)
    removing.add_argument("name")


def _key(sub: Sub) -> None:
    p = sub.add_parser("key", help="rotate or revoke the log's signing key (node stopped)",
                       description="Sign key records into this node's log; peers receive them "
                                   "like any record. Stop the node first.")
    keys = p.add_subparsers(title="key commands", metavar="ACTION")
    rotate = _command(keys, "rotate", "keys.rotate",
                      "authorise a new signing key and revoke the current one")
    _config_arg(rotate)
    revoke = _command(keys, "revoke", "keys.revoke_key",
                      "revoke a signing key (e.g. compromised); the root key signs after")
    _config_arg(revoke)
    revoke.add_argument("key", metavar="KEY", help="ed25519:... signing key id")


def _audit(sub: Sub) -> None:
    p = _command(sub, "audit", "audit.audit",
                 "show the node's audit trail, export it, or check an export offline",
                 "Show the newest audit rows (token with the 'audit' scope), --export FILE "
                 "writes the whole hash-chained trail as JSON lines, --verify FILE checks such "
                 "an export offline (no node needed) and names the first bad line.")
    _client_args(p)
    p.add_argument("--last", type=int, default=20, metavar="N",
                   help="how many of the newest rows to show (default 20)")
    p.add_argument("--export", type=Path, metavar="FILE", help="write every row as JSON lines")
    p.add_argument("--verify", type=Path, metavar="FILE",
                   help="check the hash chain of an export; exit 1 on a fault")


def _report(sub: Sub) -> None:
    p = _command(sub, "report", "report.report",
                 "write the transparency report (JSON and one HTML page) for a period",
                 "Aggregates only (no hash, case reference or query): cases, adds and "
                 "revokes, matches and actions per organisation, time-to-removal per peer, "
                 "disputes. Reads the node's store (the node may be running).")
    _config_arg(p)
    p.add_argument("--from", dest="start", required=True, metavar="DATE",
                   help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="end", required=True, metavar="DATE",
                   help="last day, YYYY-MM-DD (UTC), included")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                   help="where to write report.json and report.html (default: .)")


def _group(sub: Sub) -> None:
    p = sub.add_parser("group", help="draw the opaque id of a new sharing group",
                       description="Sharing groups are opaque 32-hex ids on the wire (SPEC "
                                   "§9.1); node.toml [groups] gives each a local name.")
    groups = p.add_subparsers(title="group commands", metavar="ACTION")
    new = _command(groups, "new", "local.group_new",
                   "print a [groups] line with a fresh random id for NAME",
                   "Print NAME = \"<32 hex>\" for node.toml [groups]. Hand the id to the "
                   "group's members out of band; each names it as it likes.")
    new.add_argument("name", help="the local name (a-z 0-9 _ . -)")


def _unfreeze(sub: Sub) -> None:
    p = _command(sub, "unfreeze", "keys.unfreeze",
                 "lift a freeze after resolving an equivocation or a restored backup",
                 "Without ORIGIN: allow this node to sign again (after a restored backup has "
                 "caught up from its peers). With ORIGIN: accept records of that origin again.")
    _config_arg(p)
    p.add_argument("origin", nargs="?", metavar="ORIGIN")


if __name__ == "__main__":
    sys.exit(main())
