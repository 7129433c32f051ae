"""Generate ``protocol/vectors/checkpoints.json``: known-key vectors of SPEC §20.

Run ``python tests/protocol/generate_checkpoint_vectors.py`` from the repository root to rewrite
the file (``--check``: exit 1 if it is stale; ``tests/protocol/test_checkpoints.py`` does the
same). Everything comes from fixed seeds (``root`` = bytes 0..31, ``signing`` = 32..63,
``rotated`` = 64..95, ``stranger`` = 96..127, ``witness_a`` = 128..159, ``witness_b`` =
160..191) and fixed timestamps. Expected codes and paths are written by hand from the SPEC;
the script refuses to write a vector the implementation does not reproduce.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from hashmesh.protocol import canonical
from hashmesh.protocol.checkpoints import (
    CHECKPOINT_DOMAIN,
    COSIGNATURE_DOMAIN,
    Checkpoint,
    CheckpointBody,
    SplitView,
    Verdict,
    judge,
)
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import SigningKey, b64url_encode
from hashmesh.protocol.log import LogHead, append
from hashmesh.protocol.records import AddBody, KeyBody, KeyRevokeBody, SignedRecord
from hashmesh.protocol.signing import KeyRing

PATH = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "checkpoints.json"
SEEDS = {"root": 0, "signing": 32, "rotated": 64, "stranger": 96, "witness_a": 128,
         "witness_b": 160}
KEYS = {name: SigningKey(bytes(range(start, start + 32))) for name, start in SEEDS.items()}
T0 = 1_700_000_000_000


def add(index: int) -> AddBody:
    items = [{"hashes": [{"type": "pdq", "value": f"{index + 1:064x}"}], "list": "ncii",
              "tier": "victim_submitted"}]
    salt = b64url_encode(hashlib.sha256(canonical.encode(items)).digest()[:16])
    return AddBody.from_json({"items": items, "salt": salt}, "body")


def build_log() -> list[SignedRecord]:
    """seq 1 grants ``signing``; 2-3 adds; 4 grants ``rotated``; 5 an add by ``rotated``;
    6 revokes ``rotated`` with last_seq 5 (after signing the add at 5)."""
    root, signing, rotated = KEYS["root"], KEYS["signing"], KEYS["rotated"]
    records: list[SignedRecord] = []

    def push(body: Any, signer: SigningKey) -> None:
        head = LogHead.of(records[-1]) if records else None
        records.append(append(head, signer=signer, origin=root.id, body=body,
                              now_ms=T0 + len(records)))

    push(KeyBody(signing.id), root)
    push(add(0), signing)
    push(add(1), signing)
    push(KeyBody(rotated.id), root)
    push(add(2), rotated)
    push(KeyRevokeBody(rotated.id, last_seq=5), root)
    return records


def ring(records: list[SignedRecord]) -> KeyRing:
    return KeyRing.from_records(KEYS["root"].id, records)


def checkpoint_raw(body: dict[str, Any], signer: str, cosigners: list[str],
                   *, sig_domain: bytes = CHECKPOINT_DOMAIN) -> dict[str, Any]:
    """A checkpoint as JSON, signed for real by ``signer`` and each cosigner."""
    c = canonical.encode(body)
    cosignatures = sorted(({"witness": KEYS[w].id,
                            "sig": b64url_encode(KEYS[w].sign(COSIGNATURE_DOMAIN + c))}
                           for w in cosigners), key=lambda entry: entry["witness"])
    return {"checkpoint": body, "sig": b64url_encode(KEYS[signer].sign(sig_domain + c)),
            "cosignatures": cosignatures}


def body_at(records: list[SignedRecord], seq: int, key: str = "signing",
            ts: int = T0 + 60_000) -> dict[str, Any]:
    return {"origin": KEYS["root"].id, "seq": seq, "id": records[seq - 1].id, "ts": ts,
            "key": KEYS[key].id}


def error_of(data: bytes, records: list[SignedRecord]) -> tuple[str, str]:
    try:
        Checkpoint.from_bytes(data).verify(ring(records))
    except ProtocolError as exc:
        return exc.code, exc.path
    raise AssertionError(f"accepted: {data!r}")


def build_valid(records: list[SignedRecord]) -> dict[str, Any]:
    body = body_at(records, 3)
    made = Checkpoint.sign(KEYS["signing"], origin=KEYS["root"].id, seq=3,
                           record_id=records[2].id, ts=body["ts"])
    cosigned = made.cosign(KEYS["witness_b"]).cosign(KEYS["witness_a"])
    cosigned.verify(ring(records))
    c = CheckpointBody.from_json(body, "checkpoint").raw
    assert cosigned.raw == canonical.encode(checkpoint_raw(body, "signing",
                                                           ["witness_a", "witness_b"]))
    return {
        "description": "the origin's checkpoint of seq 3, signed by its signing key and "
                       "cosigned by both witnesses",
        "checkpoint_bytes": c.decode(),
        "message": (CHECKPOINT_DOMAIN + c).decode(),
        "cosignature_message": (COSIGNATURE_DOMAIN + c).decode(),
        "unsigned": made.raw.decode(),
        "cosigned": cosigned.raw.decode(),
        "witnessed_by": {"witnesses": [KEYS["witness_a"].id], "quorum": 1, "expect": True},
    }


def build_invalid(records: list[SignedRecord]) -> list[dict[str, Any]]:
    good = checkpoint_raw(body_at(records, 3), "signing", ["witness_a", "witness_b"])
    cases: list[tuple[str, str, bytes, str, str]] = []

    def case(name: str, description: str, value: Any, code: str, path: str) -> None:
        data = value if isinstance(value, bytes) else canonical.encode(value)
        cases.append((name, description, data, code, path))

    forged = json.loads(json.dumps(good))
    forged["cosignatures"][1]["sig"] = b64url_encode(KEYS["stranger"].sign(
        COSIGNATURE_DOMAIN + canonical.encode(good["checkpoint"])))
    case("forged_cosignature", "the second cosignature is by another key than its witness",
         forged, "BAD_SIGNATURE", "checkpoint.cosignatures[1].sig")
    case("cosignature_in_checkpoint_domain", "a witness signed C under the checkpoint domain "
         "(domains keep an origin's signature and a witness's apart)",
         {**good, "cosignatures": [{"witness": KEYS["witness_a"].id, "sig": b64url_encode(
             KEYS["witness_a"].sign(CHECKPOINT_DOMAIN + canonical.encode(good["checkpoint"])))}]},
         "BAD_SIGNATURE", "checkpoint.cosignatures[0].sig")
    case("origin_signature_forged", "signed by a stranger, claiming the signing key",
         {**good, "sig": b64url_encode(KEYS["stranger"].sign(
             CHECKPOINT_DOMAIN + canonical.encode(good["checkpoint"])))},
         "BAD_SIGNATURE", "checkpoint.sig")
    case("record_signature_as_checkpoint", "the head of record 3 signed under the record domain",
         {**good, "sig": b64url_encode(records[2].sig)}, "BAD_SIGNATURE", "checkpoint.sig")
    case("key_not_authorised", "signed by a key the origin never granted",
         checkpoint_raw(body_at(records, 3, "stranger"), "stranger", []),
         "KEY_NOT_AUTHORISED", "checkpoint.checkpoint.key")
    case("key_before_its_window", "signed by rotated at seq 3, before its grant at seq 4",
         checkpoint_raw(body_at(records, 3, "rotated"), "rotated", []),
         "KEY_NOT_AUTHORISED", "checkpoint.checkpoint.key")
    case("key_withdrawn_since", "signed by rotated at seq 5, in its window, but withdrawn "
         "since (seq 6): a leaked key cannot raise a false split view",
         checkpoint_raw(body_at(records, 5, "rotated"), "rotated", []),
         "KEY_REVOKED", "checkpoint.checkpoint.key")
    unsorted = {**good, "cosignatures": list(reversed(good["cosignatures"]))}
    case("cosignatures_unsorted", "cosignatures not sorted by witness", unsorted,
         "BAD_SCHEMA", "checkpoint.cosignatures[1].witness")
    case("seq_zero", "a checkpoint of an empty log",
         {**good, "checkpoint": {**good["checkpoint"], "seq": 0}}, "BAD_SCHEMA",
         "checkpoint.checkpoint.seq")
    case("bad_id", "an id that is not 64 hex",
         {**good, "checkpoint": {**good["checkpoint"], "id": "00"}}, "BAD_SCHEMA",
         "checkpoint.checkpoint.id")
    case("unknown_field", "a field SPEC §20.1 does not define",
         {**good, "checkpoint": {**good["checkpoint"], "witness": "x"}}, "UNKNOWN_FIELD",
         "checkpoint.checkpoint.witness")
    case("small_order_witness", "a cosignature by the identity point as witness key",
         {**good, "cosignatures": [{"witness": "ed25519:" + b64url_encode(
             (1).to_bytes(32, "little")), "sig": good["cosignatures"][0]["sig"]}]},
         "BAD_KEY", "checkpoint.cosignatures[0].witness")
    case("non_canonical", "valid JSON with a space", canonical.encode(good).replace(
        b'":{', b'": {', 1), "NON_CANONICAL", "checkpoint")
    case("oversize", "over 8,192 bytes", b" " * 8_193, "OVERSIZE", "checkpoint")
    vectors = []
    for name, description, data, code, path in cases:
        assert error_of(data, records) == (code, path), (name, error_of(data, records))
        vectors.append({"name": name, "description": description, "checkpoint": data.decode(),
                        "error": {"code": code, "path": path}})
    return vectors


def build_judgements(records: list[SignedRecord]) -> list[dict[str, Any]]:
    fork = append(LogHead.of(records[1]), signer=KEYS["signing"], origin=KEYS["root"].id,
                  body=add(99), now_ms=T0 + 2)
    other = Checkpoint.from_json(checkpoint_raw(
        {**body_at(records, 3), "id": fork.id}, "signing", ["witness_a"]))
    held_log = records[:5]  # the judging node's head is seq 5
    out = []
    for name, checkpoint, verdict in (
            ("consistent", Checkpoint.from_json(checkpoint_raw(body_at(records, 3), "signing",
                                                               [])), Verdict.CONSISTENT),
            ("ahead", Checkpoint.from_json(checkpoint_raw(body_at(records, 6, "root"), "root",
                                                          ["witness_b"])), Verdict.AHEAD),
            ("split_view", other, Verdict.SPLIT_VIEW)):
        checkpoint.verify(ring(records))
        held = held_log[checkpoint.seq - 1] if checkpoint.seq <= 5 else None
        result = judge(checkpoint, 5, held)
        assert result.verdict is verdict
        entry: dict[str, Any] = {"name": name, "checkpoint": checkpoint.raw.decode(),
                                 "head_seq": 5, "verdict": verdict.value}
        if result.proof is not None:
            SplitView.from_json(result.proof.to_json(), keyring=ring(records))
            entry["proof"] = canonical.encode(result.proof.to_json()).decode()
            entry["fork_record"] = fork.raw.decode()
        out.append(entry)
    return out


def build_invalid_proofs(records: list[SignedRecord]) -> list[dict[str, Any]]:
    other = {**body_at(records, 3), "id": "ab" * 32}
    proof = {"kind": "split_view", "checkpoint": checkpoint_raw(other, "signing", []),
             "record": records[2].stub().to_json()}
    cases = [
        ("record_with_body", "the record must be a stub", {**proof,
         "record": records[2].to_json()}, "BAD_EVIDENCE", "evidence.record.body"),
        ("same_id", "the checkpoint names the record itself", {**proof,
         "checkpoint": checkpoint_raw(body_at(records, 3), "signing", [])}, "BAD_EVIDENCE",
         "evidence.record"),
        ("other_seq", "the record is at another seq", {**proof,
         "record": records[1].stub().to_json()}, "BAD_EVIDENCE", "evidence.record.head"),
        ("withdrawn_key", "the checkpoint is signed by a key withdrawn since",
         {**proof, "checkpoint": checkpoint_raw({**body_at(records, 5, "rotated"),
                                                 "id": "ab" * 32}, "rotated", []),
          "record": records[4].stub().to_json()},
         "KEY_REVOKED", "evidence.checkpoint.checkpoint.key"),
    ]
    out = []
    for name, description, value, code, path in cases:
        try:
            SplitView.from_json(value, keyring=ring(records))
        except ProtocolError as exc:
            assert (exc.code, exc.path) == (code, path), (name, exc.code, exc.path)
        else:
            raise AssertionError(f"{name} accepted")
        out.append({"name": name, "description": description,
                    "proof": canonical.encode(value).decode(),
                    "error": {"code": code, "path": path}})
    return out


def build() -> dict[str, Any]:
    records = build_log()
    return {
        "description": "SPEC §20: checkpoints, cosignatures, judgements and split-view proofs. "
                       "`log` is the origin's log every vector is checked against (its key "
                       "ring); keys are given by seed.",
        "keys": {name: {"seed_hex": bytes(range(s, s + 32)).hex(), "id": KEYS[name].id}
                 for name, s in SEEDS.items()},
        "log": [record.raw.decode() for record in records],
        "valid": build_valid(records),
        "invalid": build_invalid(records),
        "judgements": build_judgements(records),
        "invalid_proofs": build_invalid_proofs(records),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    content = render(build())
    if args.check:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != content:
            print(f"stale: {PATH}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(content, encoding="utf-8")
    print(f"wrote {PATH} ({len(content.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
