"""CLI commands that call the running node's local API: add, revoke, feedback, match, status.

Files given to ``add`` and ``match`` are hashed on this machine; only hashes are sent.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.cli.support import CliError, cli_token_path, print_json
from hashmesh.node.config.node import WILDCARD_HOSTS, load_node_config
from hashmesh.protocol.hashtypes import get_hash_type


def client_for(args: argparse.Namespace) -> LocalClient:
    """A client for the node named by ``--url``/``--token`` or by the config file."""
    token = args.token
    if token is None:
        token = _read_cli_token(cli_token_path(args.config))
    return LocalClient(node_url(args), token)


def node_url(args: argparse.Namespace) -> str:
    """The local API's URL: ``--url``, else the config's listen address."""
    if args.url is not None:
        return str(args.url)
    config = load_node_config(args.config)
    host = config.listen.host
    host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"{'https' if config.tls else 'http'}://{host}:{config.listen.port}"


def _read_cli_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CliError(f"no API token: pass --token, set HASHMESH_TOKEN, or create {path}"
                       ) from None


def hashes_for(inputs: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each input (an image file, a folder of them, or ``TYPE:VALUE``) as a label and its
    hashes. A folder is walked as ``hashmesh hash`` walks it; a file that is not an image
    fails naming the file."""
    result = []
    for text in inputs:
        path = Path(text)
        if path.is_file() or path.is_dir():
            # numpy, PIL: imported only for files
            from hashmesh.node.matching.hasher import ImageError, hash_file, iter_image_files

            files = list(iter_image_files([path]))
            if not files:
                raise CliError(f"{text}: no image files in this folder")
            for file in files:
                try:
                    computed = hash_file(file)
                except ImageError as exc:
                    raise CliError(f"{file}: {exc}") from None
                result.append((str(file), [
                    {"type": h.type, "value": h.value,
                     **({"quality": h.quality} if h.quality is not None else {})}
                    for h in computed]))
            continue
        name, sep, value = text.partition(":")
        if not sep:
            raise CliError(f"{text}: not a file, and not TYPE:VALUE")
        kind = get_hash_type(name, text)
        result.append((text, [{"type": kind.name, "value": kind.validate(value, text)}]))
    return result


def add(args: argparse.Namespace) -> int:
    if getattr(args, "from_file", None) is not None:
        if args.inputs:
            raise CliError("give either FILE|TYPE:VALUE arguments or --from FILE, not both")
        from hashmesh.node.cli.bulk import add_from_list

        print_json(add_from_list(args, client_for(args), _item_template(args),
                                 _dist(args)))
        return 0
    if not args.inputs:
        raise CliError("nothing to add: give FILE, DIR or TYPE:VALUE arguments, or --from FILE")
    items = [{"hashes": hashes, **_item_template(args)} for _, hashes in hashes_for(args.inputs)]
    answer = client_for(args).call("POST", "/v1/records",
                                   body={"items": items, "dist": _dist(args)})
    print_json(answer)
    return 0


def _item_template(args: argparse.Namespace) -> dict[str, Any]:
    """The fields every added item shares (all but its hashes)."""
    item: dict[str, Any] = {"tier": args.tier, "labels": args.label}
    if args.list_name:
        item["list"] = args.list_name
    if args.expires is not None:
        item["expires"] = args.expires
    return item


def _dist(args: argparse.Namespace) -> dict[str, Any]:
    dist: dict[str, Any] = {"scope": args.scope}
    if args.group:
        dist["group"] = args.group
    if args.jurisdiction:
        dist["jurisdictions"] = args.jurisdiction
    return dist


def revoke(args: argparse.Namespace) -> int:
    answer = client_for(args).call("POST", "/v1/revocations",
                                   body={"targets": args.refs, "reason": args.reason})
    print_json(answer)
    return 0


def profile_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.jurisdiction:
        body["jurisdiction"] = args.jurisdiction
    if args.contact:
        body["contact"] = args.contact
    print_json(client_for(args).call("POST", "/v1/profile", body=body))
    return 0


def feedback(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"target": args.ref, "verdict": args.verdict}
    if args.note:
        body["note"] = args.note
    print_json(client_for(args).call("POST", "/v1/feedback", body=body))
    return 0


def query_hashes_for(inputs: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``hashes_for``, but an image file gives every hash an image query looks up: its own,
    and the PDQ of its flips, rotations and trimmed margin, each naming its ``transform``."""
    result = []
    for text in inputs:
        path = Path(text)
        if not path.is_file():
            result.extend(hashes_for([text]))
            continue
        from hashmesh.node.matching.image_query import ORIGINAL, hash_image_query

        _, queries = hash_image_query(path.read_bytes())
        result.append((text, [{"type": q.type, "value": q.value,
                               **({"transform": q.transform} if q.transform != ORIGINAL
                                  else {})} for q in queries]))
    return result


def match(args: argparse.Namespace) -> int:
    """Print one answer per input (one request each, so that the hashes of one image
    corroborate each other and never another's); exit 0 only if some input's verdict is
    ``match``, 1 otherwise (``weak`` and ``disputed`` are not a match)."""
    client = client_for(args)
    report = []
    for label, hashes in query_hashes_for(args.inputs):
        body: dict[str, Any] = {"hashes": hashes}
        if args.threshold:
            body["thresholds"] = _thresholds(args.threshold)
        if args.lists:
            body["lists"] = args.lists
        if args.corroboration is not None or args.no_transforms:
            body["policy"] = {
                **({"corroboration": args.corroboration} if args.corroboration else {}),
                **({"transforms": False} if args.no_transforms else {})}
        answer = client.call("POST", "/v1/match", body=body)
        report.append({"input": label, **answer})
    print_json(report)
    return 0 if any(entry["verdict"] == "match" for entry in report) else 1


def _thresholds(pairs: list[str]) -> dict[str, int]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.isdigit():
            raise CliError(f"--threshold {pair}: expected TYPE=N, e.g. pdq=40")
        result[name] = int(value)
    return result


def status(args: argparse.Namespace) -> int:
    print_json(client_for(args).call("GET", "/v1/status"))
    return 0


def verify_index(args: argparse.Namespace) -> int:
    """``hashmesh verify --index``: exit 0 if the running node's index holds exactly the
    hashes its store has in force, 1 (with the differences) if not."""
    answer = client_for(args).call("GET", "/v1/index/check")
    print_json(answer)
    return 0 if answer.get("ok") else 1
