"""The audit log as a hash chain: each row carries the hash of the row before it.

A regulator (or the operator's own auditor) gets the audit trail as JSON lines
(``hashmesh audit --export``) and checks it offline (``hashmesh audit --verify``). Each line
is one row::

    {"id": 7, "ts": 1765080000000, "actor": "local", "action": "sign_add",
     "detail": {...}, "prev": "<hash of row 6>", "hash": "<hash of this row>"}

``hash`` is the SHA-256 (hex) of the row's **canonical form**: the JSON object of every field
but ``hash`` itself, keys sorted, no whitespace, UTF-8 (``canonical``). The first row's
``prev`` is ``GENESIS`` (64 zeros). So a row edited, removed, inserted or reordered anywhere
before the newest breaks the chain at the row after it, and the verifier names that line.

What the chain does *not* prove on its own: that the newest rows were not cut off. Whoever
can write the database can drop the tail and the chain still checks. The defence is the head:
``/v1/status`` shows ``audit.head`` (id and hash of the newest row), signed by the node key
(``audit.head_signature``); an auditor who noted an earlier head checks that the export still
contains that row with that hash. Rows are linked in commit order: every write takes the
store's write lock (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock), and the row
before is read inside that transaction, so match workers writing from other processes
extend one linear chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
HEAD_CONTEXT = b"hashmesh audit head v1\n"
FIELDS = ("id", "ts", "actor", "action", "detail", "prev")


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes that ``hash`` covers: every field of ``FIELDS``, as sorted compact JSON."""
    return json.dumps({name: row[name] for name in FIELDS}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def chain_rows(rows: Iterable[tuple[int, str, str, str]], last_id: int,
               last_hash: str | None) -> list[tuple[int, int, str, str, str, str, str]]:
    """``(id, ts, actor, action, detail, prev, hash)`` for new rows ``(ts, actor, action,
    detail as JSON)`` appended after the row ``last_id`` whose hash is ``last_hash``."""
    out = []
    prev = last_hash or GENESIS
    row_id = last_id
    for ts, actor, action, detail in rows:
        row_id += 1
        digest = row_hash({"id": row_id, "ts": ts, "actor": actor, "action": action,
                           "detail": json.loads(detail), "prev": prev})
        out.append((row_id, ts, actor, action, detail, prev, digest))
        prev = digest
    return out


def head_statement(node_key: str, row_id: int, digest: str, at_ms: int) -> dict[str, Any]:
    """What the node signs about its audit chain: "at ``at_ms`` my newest row was ``row_id``
    with hash ``digest``"."""
    return {"node_key": node_key, "id": row_id, "hash": digest, "at": at_ms}


def head_message(statement: dict[str, Any]) -> bytes:
    """The bytes the node key signs: a context string, then the sorted compact JSON."""
    return HEAD_CONTEXT + json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def export_line(row: dict[str, Any]) -> str:
    """One line of an export (without the newline): the row with its ``hash``."""
    return json.dumps({**{name: row[name] for name in FIELDS}, "hash": row["hash"]},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ChainCheck:
    """What ``verify_lines`` found: rows checked, the last good row, and the first fault."""

    rows: int
    first_id: int | None
    head_id: int | None
    head_hash: str | None
    bad_line: int | None = None
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_line is None


def verify_lines(lines: Iterable[str]) -> ChainCheck:
    """Check an export: every line parses, has every field, hashes to its ``hash``, names
    the line before in ``prev`` and has the next id. The first line of a whole export has
    ``prev`` = ``GENESIS`` and id 1; an export that starts later is checked from its first
    line (its ``prev`` is then an anchor to compare with an earlier export)."""
    rows = 0
    first_id: int | None = None
    prev_id: int | None = None
    prev_hash: str | None = None
    for number, line in enumerate(_numbered(lines), start=1):
        fault = _line_fault(line, prev_id, prev_hash)
        if isinstance(fault, str):
            return ChainCheck(rows, first_id, prev_id, prev_hash, number, fault)
        row = fault
        rows += 1
        first_id = row["id"] if first_id is None else first_id
        prev_id, prev_hash = row["id"], row["hash"]
    return ChainCheck(rows, first_id, prev_id, prev_hash)


def _numbered(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        yield line.rstrip("\n")


def _line_fault(line: str, prev_id: int | None, prev_hash: str | None
                ) -> str | dict[str, Any]:
    """The row of ``line`` if it is sound after ``(prev_id, prev_hash)``, else the fault."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    if not isinstance(row, dict):
        return "not a JSON object"
    missing = [name for name in (*FIELDS, "hash") if name not in row]
    if missing:
        return f"missing field {missing[0]!r}"
    if not isinstance(row["id"], int) or not isinstance(row["hash"], str):
        return "field 'id' must be an integer and 'hash' a string"
    if row_hash(row) != row["hash"]:
        return f"row {row['id']}: hash does not match its content (edited)"
    if prev_id is None:
        if row["id"] == 1 and row["prev"] != GENESIS:
            return "row 1: prev is not the genesis value"
    else:
        if row["prev"] != prev_hash:
            return f"row {row['id']}: prev is not the hash of row {prev_id} (a row edited, " \
                   "removed or inserted before it)"
        if row["id"] != prev_id + 1:
            return f"row {row['id']}: follows row {prev_id} (rows missing or reordered)"
    return row
