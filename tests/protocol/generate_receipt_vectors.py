"""Generate ``protocol/vectors/receipts.json``: known-key vectors of ``receipt`` records.

Run ``python -m tests.protocol.generate_receipt_vectors`` from the repository root to rewrite
the file, or with ``--check`` to fail if it differs (``tests/protocol/test_receipt_vectors.py``
does the same). Seeds, timestamps and salts are fixed (those of ``generate_vectors.py``), so
every run produces identical bytes; expected codes and paths are written by hand from SPEC §21.

Two origins take part: the origin ``O`` (seed ``root``, signing key ``signing``), which signs
an add, a group-scoped add and a revoke; and the node ``N`` (seed ``stranger``, its own root
key signs), which receipts them. ``valid`` records are accepted; ``invalid`` records are
refused by their schema alone (code and path); ``against_targets`` are structurally valid
receipts that a verifier holding the targets refuses (``protocol.receipts.check_receipt``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.receipts import check_receipt
from hashmesh.protocol.records import MAX_RECEIPT_TARGETS, SignedRecord
from hashmesh.protocol.signing import KeyRing, verify
from tests.protocol.generate_vectors import (
    GROUP,
    KEYS,
    ORIGIN,
    VECTORS_DIR,
    Log,
    pdq_item,
    salt,
    salted,
    sign_raw,
    text,
    ts,
)

NODE = KEYS["stranger"].id
OUT = VECTORS_DIR / "receipts.json"


def origin_log() -> Log:
    """O's log: key grant, an add (scope all), an add (a group), a revoke of the first."""
    log = Log()
    log.extend("root", {"signing_key": KEYS["signing"].id}, "key")
    log.extend("signing", salted("receipt-add", {"items": [pdq_item(0)]}), "add")
    log.extend("signing", salted("receipt-group-add", {"items": [pdq_item(1)]}), "add",
               dist={"scope": "group", "group": GROUP})
    log.extend("signing", {"targets": [{"record": log.records[1].id}], "reason": "withdrawn"},
               "revoke")
    return log


def node_head(seq: int, prev: str | None, *, dist: dict[str, Any] | None = None,
              ts_ms: int | None = None, v: int = 2) -> dict[str, Any]:
    return {"v": v, "type": "receipt", "origin": NODE, "seq": seq, "prev": prev, "key": NODE,
            "ts": ts(10 + seq) if ts_ms is None else ts_ms, "dist": dist or {"scope": "all"}}


def entry(record: SignedRecord, kind: str, applied: int) -> dict[str, Any]:
    return {"record": record.id, "kind": kind, "applied": applied}


def parsed_or_error(data: bytes) -> dict[str, Any]:
    try:
        record = SignedRecord.from_bytes(data)
        verify(record, KeyRing(NODE))
    except ProtocolError as exc:
        return {"code": exc.code, "path": exc.path}
    return {"accepted": record.id}


def build() -> dict[str, Any]:
    log = origin_log()
    add, group_add, revoke = log.records[1], log.records[2], log.records[3]
    receipt_all = {"targets": [entry(add, "active", ts(2) + 150),
                               entry(revoke, "removed", ts(4) + 320)],
                   "salt": salt("receipt-all")}
    first = sign_raw(KEYS["stranger"], node_head(1, None), receipt_all)
    first_id = SignedRecord.from_bytes(first).id
    receipt_group = {"targets": [entry(group_add, "active", ts(3) + 90)],
                     "salt": salt("receipt-group")}
    second = sign_raw(KEYS["stranger"], node_head(2, first_id,
                                                  dist={"scope": "group", "group": GROUP}),
                      receipt_group)
    valid = []
    for name, description, data, body in (
            ("receipt_all", "an add active and its revoke applied, scope all", first,
             receipt_all),
            ("receipt_group", "an add of a sharing group: the receipt carries that group",
             second, receipt_group)):
        record = SignedRecord.from_bytes(data)
        valid.append({"name": name, "description": description,
                      "body_canonical": text(canonical.encode(body)),
                      "digest": record.head.digest, "head_canonical": text(record.head_bytes),
                      "id": record.id, "record": text(record.raw),
                      "stub": text(record.stub().raw)})
    body = {"targets": [entry(add, "active", ts(11))], "salt": salt("receipt-bad")}
    many = {"targets": [{"record": f"{i:064x}", "kind": "active", "applied": ts(11)}
                        for i in range(MAX_RECEIPT_TARGETS + 1)], "salt": salt("receipt-many")}
    invalid = [
        ("v1_receipt", "a receipt in a v1 head: the type exists from v2 on",
         sign_raw(KEYS["stranger"], node_head(1, None, v=1), {"targets": body["targets"]}),
         "UNKNOWN_TYPE", "record.head.type"),
        ("applied_after_signed", "a target applied after the receipt's own ts",
         sign_raw(KEYS["stranger"], node_head(1, None, ts_ms=ts(11) - 1), body),
         "BAD_SCHEMA", "record.body.targets[0].applied"),
        ("too_many_targets", f"{MAX_RECEIPT_TARGETS + 1} targets",
         sign_raw(KEYS["stranger"], node_head(1, None), many), "BAD_SCHEMA",
         "record.body.targets"),
        ("repeated_target", "one record twice",
         sign_raw(KEYS["stranger"], node_head(1, None),
                  dict(body, targets=body["targets"] * 2)), "BAD_SCHEMA",
         "record.body.targets[1]"),
        ("unknown_kind", "kind 'seen'",
         sign_raw(KEYS["stranger"], node_head(1, None),
                  dict(body, targets=[dict(body["targets"][0], kind="seen")])),
         "UNKNOWN_TYPE", "record.body.targets[0].kind"),
        ("missing_salt", "a v2 receipt without salt",
         sign_raw(KEYS["stranger"], node_head(1, None), {"targets": body["targets"]}),
         "BAD_SCHEMA", "record.body.salt"),
    ]
    invalid_vectors = []
    for name, description, data, code, path in invalid:
        got = parsed_or_error(data)
        if got != {"code": code, "path": path}:
            raise AssertionError(f"{name}: expected {code} at {path}, got {got}")
        invalid_vectors.append({"name": name, "description": description, "record": text(data),
                                "expect": {"code": code, "path": path}})
    against = [
        ("scope_wider_than_target", "a receipt of a group-scoped add with scope all",
         {"targets": [entry(group_add, "active", ts(11))], "salt": salt("t1")}, None,
         "BAD_SCHEMA", "record.head.dist"),
        ("kind_of_a_revoke", "an active receipt of a revoke",
         {"targets": [entry(revoke, "active", ts(11))], "salt": salt("t2")}, None,
         "BAD_SCHEMA", "record.body.targets[0].kind"),
        ("key_record", "a receipt of a key record",
         {"targets": [entry(log.records[0], "active", ts(11))], "salt": salt("t3")}, None,
         "BAD_SCHEMA", "record.body.targets[0].record"),
    ]
    against_vectors = []
    held = {r.id: r.head for r in log.records}
    for name, description, rbody, dist, code, path in against:
        data = sign_raw(KEYS["stranger"], node_head(1, None, dist=dist), rbody)
        record = SignedRecord.from_bytes(data)
        try:
            assert record.body is not None
            check_receipt(record.head, record.body, held)  # type: ignore[arg-type]
            raise AssertionError(f"{name}: accepted")
        except ProtocolError as exc:
            if (exc.code, exc.path) != (code, path):
                raise AssertionError(f"{name}: expected {code} at {path}, got "
                                     f"{exc.code} at {exc.path}") from None
        against_vectors.append({"name": name, "description": description, "record": text(data),
                                "expect": {"code": code, "path": path}})
    return {
        "description": "receipt records (SPEC §21). `origin_log` is O's log (key grant, add, "
                       "group add, revoke); N signs the receipts with its root key. `valid` "
                       "MUST be accepted; `invalid` MUST be refused with the code and path "
                       "(schema alone); `against_targets` MUST be refused by a verifier that "
                       "holds origin_log.",
        "keys": {"origin": ORIGIN, "node": NODE, "group": GROUP},
        "origin_log": log.lines(),
        "valid": valid,
        "invalid": invalid_vectors,
        "against_targets": against_vectors,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file differs")
    args = parser.parse_args()
    wanted = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != wanted:
            print(f"{OUT} differs from the generator", file=sys.stderr)
            return 1
        return 0
    Path(OUT).write_text(wanted, encoding="utf-8")
    print(f"wrote {OUT} ({len(wanted.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
