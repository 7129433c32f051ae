"""``hashmesh audit``: read the node's hash-chained audit trail, export it, check an export.

* ``hashmesh audit`` shows the newest rows (``--last N``), through the local API (a token with
  the ``audit`` scope);
* ``--export FILE`` writes the whole trail as JSON lines, page by page, then prints the signed
  head the node gave (note it down: it is what catches a later export that lost its tail);
* ``--verify FILE`` checks an export offline, with no node and no token, and names the first
  line that breaks the chain (``node/store/audit_chain.py`` says what the chain proves).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from hashmesh.node.cli.remote import client_for
from hashmesh.node.cli.support import CliError, print_json
from hashmesh.node.store.audit_chain import export_line, verify_lines

EXPORT_PAGE = 1000


def audit(args: argparse.Namespace) -> int:
    if args.verify is not None:
        if args.export is not None:
            raise CliError("give either --export FILE or --verify FILE, not both")
        return verify_export(args.verify)
    client = client_for(args)
    if args.export is not None:
        return export_trail(client, args.export)
    page = client.call("GET", f"/v1/audit?last={args.last}")
    for row in page["rows"]:
        print(_row_text(row))
    head = page["head"]
    print(f"head: row {head['id']} hash {head['hash']}" if head else "head: no audit rows yet")
    return 0


def export_trail(client: Any, path: Path) -> int:
    rows, after, head = 0, "0", None
    with open(path, "w", encoding="utf-8") as out:
        while True:
            page = client.call("GET", f"/v1/audit?after={after}&limit={EXPORT_PAGE}")
            for row in page["rows"]:
                out.write(export_line(row) + "\n")
            rows += len(page["rows"])
            after, head = page["next"], page["head"]
            if not page["more"]:
                break
    print_json({"exported": rows, "file": str(path), "head": head})
    return 0


def verify_export(path: Path) -> int:
    with open(path, encoding="utf-8") as lines:
        check = verify_lines(lines)
    if not check.ok:
        print(f"{path}:{check.bad_line}: {check.fault}")
        print(f"chain broken at line {check.bad_line} ({check.rows} rows before it are sound)")
        return 1
    if check.rows == 0:
        print(f"{path}: no rows")
        return 1
    print(f"{path}: {check.rows} rows, ids {check.first_id} to {check.head_id}: chain intact; "
          f"head hash {check.head_hash}")
    if check.first_id != 1:
        print("note: the export does not start at row 1; it is checked from its first line")
    return 0


def _row_text(row: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["ts"] / 1000))
    detail = json.dumps(row["detail"], sort_keys=True, separators=(",", ":"))
    return f"{row['id']:>8}  {when}Z  {row['actor']:<20} {row['action']:<16} {detail}"
