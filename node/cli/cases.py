"""``hashmesh case``: open a case, see its status, withdraw it, work the review queue.

``status`` and ``withdraw`` need no API token: the reference and PIN are the key. The PIN is
asked for (``getpass``) or read from standard input, never taken as an argument, which other
users of the machine could see in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.cli.remote import _dist, _item_template, client_for, hashes_for, node_url
from hashmesh.node.cli.support import CliError, print_json


def open_case(args: argparse.Namespace) -> int:
    items = [{"hashes": hashes, **_item_template(args)} for _, hashes in hashes_for(args.inputs)]
    answer = client_for(args).call("POST", "/v1/cases", body={
        "items": items, "dist": _dist(args), "review": args.review})
    if args.json:
        print_json(answer)
        return 0
    held = answer["state"] == "pending_review"
    print(f"Case opened with {len(items)} item{'' if len(items) == 1 else 's'}"
          + ("; held for review: nothing is shared until a helpline approves it."
             if held else "; signed and shared."))
    print()
    print(f"  Reference:  {answer['reference']}")
    print(f"  PIN:        {answer['pin']}")
    print()
    print("Keep both safe, apart from the images. The PIN is shown only now and cannot be "
          "recovered;\nwith the reference and PIN anyone can see or withdraw this case:\n"
          f"  hashmesh case status {answer['reference']}")
    return 0


def case_status(args: argparse.Namespace) -> int:
    return _with_pin(args, "/v1/cases/status")


def withdraw_case(args: argparse.Namespace) -> int:
    return _with_pin(args, "/v1/cases/withdraw")


def pending(args: argparse.Namespace) -> int:
    print_json(client_for(args).call("GET", "/v1/cases/pending"))
    return 0


def approve(args: argparse.Namespace) -> int:
    print_json(client_for(args).call("POST", f"/v1/cases/{_case_id(args)}/approve"))
    return 0


def reject(args: argparse.Namespace) -> int:
    print_json(client_for(args).call("POST", f"/v1/cases/{_case_id(args)}/reject"))
    return 0


def _with_pin(args: argparse.Namespace, path: str) -> int:
    pin = _read_pin(args)
    answer: dict[str, Any] = _public_client(args).call(
        "POST", path, body={"reference": args.reference, "pin": pin, "lang": args.lang})
    if args.json:
        print_json(answer)
    else:
        for line in answer["words"]:
            print(line)
    return 0


def _read_pin(args: argparse.Namespace) -> str:
    if args.pin_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise CliError("--pin-stdin: standard input holds no PIN")
        return line.strip()
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the PIN: pass it on standard input with "
                       "--pin-stdin")
    return getpass.getpass("PIN: ")


def _public_client(args: argparse.Namespace) -> LocalClient:
    """A client without a token: none is needed, and a person holds none."""
    return LocalClient(node_url(args), None)


def _case_id(args: argparse.Namespace) -> str:
    case_id = str(args.case_id).strip().lower()
    if len(case_id) != 24 or any(c not in "0123456789abcdef" for c in case_id):
        raise CliError(f"{args.case_id!r:.40}: a case id is 24 hex characters, as "
                       "`hashmesh case pending` lists them (not a case reference)")
    return case_id
