"""Generate ``protocol/vectors/profiles.json``: the ``profile`` record (SPEC §4.6).

Run ``python -m tests.protocol.generate_profile_vectors`` from the repository root to rewrite
it, or with ``--check`` to fail if it differs (``tests/protocol/test_profile_vectors.py``
does the same). Kept apart from ``generate_vectors.py`` so that the record types other
branches add do not touch the same file. Same seeds, timestamps and low-level signer as
there; expected codes and paths are written by hand from the SPEC.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import b64url_encode
from hashmesh.protocol.records import Distribution, ProfileBody, SignedRecord
from hashmesh.protocol.signing import KeyRing, sign_record, verify
from tests.protocol.generate_vectors import (
    KEYS,
    ORIGIN,
    VECTORS_DIR,
    head_json,
    sign_raw,
    text,
    ts,
)

PATH = VECTORS_DIR / "profiles.json"

VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("profile_full", "name, jurisdiction and contact, signed by the signing key",
     {"contact": "abuse@helpline.example", "jurisdiction": "DE", "name": "Helpline Nord"}),
    ("profile_name_only", "only the required name; non-ASCII text is written as UTF-8",
     {"name": "Línea de Ayuda – Sur"}),
]

# (name, description, head changes, body, code, path)
INVALID: list[tuple[str, str, dict[str, Any], Any, str, str]] = [
    ("profile_empty_name", "the name is empty", {}, {"name": ""}, "BAD_SCHEMA", "record.body.name"),
    ("profile_name_too_long", "65 characters", {}, {"name": "x" * 65}, "BAD_SCHEMA",
     "record.body.name"),
    ("profile_name_control", "a line feed in the name", {}, {"name": "Help\nline"}, "BAD_SCHEMA",
     "record.body.name"),
    ("profile_name_bidi", "a right-to-left override (U+202E) in the name", {},
     {"name": "Help\u202eline"}, "BAD_SCHEMA", "record.body.name"),
    ("profile_name_padded", "white space at the end of the name", {}, {"name": "Helpline "},
     "BAD_SCHEMA", "record.body.name"),
    ("profile_contact_too_long", "129 characters", {},
     {"contact": "c" * 129, "name": "Helpline"}, "BAD_SCHEMA", "record.body.contact"),
    ("profile_bad_jurisdiction", "lowercase code", {},
     {"jurisdiction": "de", "name": "Helpline"}, "BAD_SCHEMA", "record.body.jurisdiction"),
    ("profile_unknown_field", "a field the SPEC does not define", {},
     {"logo": "x", "name": "Helpline"}, "UNKNOWN_FIELD", "record.body.logo"),
    ("profile_scope_group", "a profile always has scope all",
     {"dist": {"group": "0" * 32, "scope": "group"}}, {"name": "Helpline"}, "BAD_SCHEMA",
     "record.head.dist"),
    ("profile_v1", "profile records exist from version 2", {"v": 1}, {"name": "Helpline"},
     "UNKNOWN_TYPE", "record.head.type"),
]


def build() -> dict[str, Any]:
    records = []
    prev = None
    ring = KeyRing(ORIGIN)
    for seq, (name, description, body) in enumerate(VALID, start=1):
        record = sign_record(signer=KEYS["root"], origin=ORIGIN, seq=seq, prev=prev,
                             ts=ts(seq), body=ProfileBody.from_json(body, "body"),
                             dist=Distribution())
        verify(SignedRecord.from_bytes(record.raw), ring)
        records.append({
            "name": name, "description": description,
            "inputs": {"signer": "root", "origin": ORIGIN, "seq": seq, "prev": prev,
                       "ts": ts(seq), "dist": {"scope": "all"}, "type": "profile",
                       "body": body},
            "body_canonical": text(canonical.encode(body)),
            "digest": record.head.digest,
            "head_canonical": text(record.head_bytes),
            "signature": b64url_encode(record.sig),
            "id": record.id,
            "record": text(record.raw),
        })
        prev = record.id
    invalid = []
    for name, description, changes, body, code, path in INVALID:
        head = {**head_json("profile", 1, None, signer="root"), **changes}
        data = sign_raw(KEYS["root"], head, body)
        error = _rejection(data)
        assert (error.code, error.path) == (code, path), (name, error.code, error.path)
        invalid.append({"name": name, "description": description, "record": text(data),
                        "code": code, "path": path})
    return {
        "description": "profile records (SPEC §4.6): each valid one verifies with the root "
                       "key of the seeds in records.json and chains from seq 1; each invalid "
                       "one (at seq 1, correctly signed) is refused with the code and path "
                       "given. A stub of a profile record is refused by a node (never "
                       "stubbed, §9).",
        "records": records,
        "invalid": invalid,
    }


def _rejection(data: bytes) -> ProtocolError:
    try:
        verify(SignedRecord.from_bytes(data), KeyRing(ORIGIN))
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"accepted {data[:120]!r}")


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    content = render(build())
    if args.check:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != content:
            print(f"stale: {PATH.name}", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(content, encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
