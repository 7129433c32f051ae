"""Generate ``protocol/vectors/*.json``: known-key test vectors for other implementations.

Run ``python tests/protocol/generate_vectors.py`` from the repository root to rewrite the
files, or with ``--check`` to fail if they differ from what this script produces now (the
test suite does the same, so the committed vectors cannot drift from the implementation).

Everything is derived from fixed seeds and fixed timestamps; Ed25519 signatures are
deterministic, so every run produces identical bytes. Expected error codes and paths are
written here by hand from ``protocol/SPEC.md`` -- not copied from the implementation -- and
the script refuses to write a vector that the implementation does not reproduce exactly.

The vectors are built with the protocol's own signing code where the record is valid, and
with a low-level signer (``sign_raw``) for invalid records, so that each invalid record is
properly signed and carries exactly one fault: an implementation that checks in another
order would still reject it, but possibly with another code, which the vectors catch.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings
import rfc8785

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode, is_strict_point
from hashmesh.protocol.log import LogHead, check_next, detect_equivocation
from hashmesh.protocol.records import (
    BODY_CLASSES,
    DOMAINS,
    MAX_RECORD_BYTES,
    VERSION,
    Distribution,
    SignedRecord,
)
from hashmesh.protocol.signing import KeyRing, sign_record, verify
from hashmesh.protocol.state import State

VECTORS_DIR = Path(__file__).resolve().parents[2] / "protocol" / "vectors"

SEEDS: dict[str, bytes] = {
    "root": bytes(range(32)),                # the origin's root key: its identity
    "signing": bytes(range(32, 64)),         # first signing key, authorised at seq 1
    "rotated": bytes(range(64, 96)),         # second signing key, for the rotation
    "stranger": bytes(range(96, 128)),       # someone else's root key
}
KEYS = {name: SigningKey(seed) for name, seed in SEEDS.items()}
ORIGIN = KEYS["root"].id
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, in ms; record n has ts T0 + 1000 * n

PDQ = HASH_TYPES["pdq"].examples()
OTHER_RECORD = hashlib.sha256(b"a record of another origin").hexdigest()
DOMAIN = DOMAINS[VERSION]
# A v2 sharing group is an opaque 128-bit id (SPEC §9.1); a fixed one for the vectors.
GROUP = hashlib.sha256(b"vector group: eu-helplines").hexdigest()[:32]


def salt(name: str) -> str:
    """A fixed salt per vector (real signers draw 16 random bytes, SPEC §4.5)."""
    return b64url_encode(hashlib.sha256(b"vector salt: " + name.encode()).digest()[:16])


def example(hash_type: str, index: int = 0) -> str:
    return HASH_TYPES[hash_type].examples()[index]


def text(data: bytes) -> str:
    return data.decode("utf-8")


def ts(seq: int) -> int:
    return T0 + 1000 * seq


# -- low-level signing, for records the protocol's own signer would refuse to build ----------

def sign_raw(signer: SigningKey, head: dict[str, Any], body: Any, *,
             digest: str | None = None, head_bytes: bytes | None = None,
             message: bytes | None = None, extra: dict[str, Any] | None = None) -> bytes:
    """Sign ``head`` as given (valid or not) and return the canonical envelope bytes.

    ``digest`` overrides the body digest; ``head_bytes`` replaces the head's canonical form
    for values JCS can encode but hashmesh forbids; ``message`` replaces what is signed;
    ``extra`` adds envelope fields.
    """
    head = dict(head)
    if "digest" not in head:
        head["digest"] = digest or hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    head_text = head_bytes if head_bytes is not None else rfc8785.dumps(head)
    sig = signer.sign(message if message is not None else DOMAIN + head_text)
    envelope: dict[str, Any] = {"head": "\x00HEAD\x00", "sig": b64url_encode(sig)}
    if body is not None:
        envelope["body"] = body
    envelope.update(extra or {})
    return rfc8785.dumps(envelope).replace(b'"\\u0000HEAD\\u0000"', head_text)


def head_json(record_type: str, seq: int, prev: str | None, *, signer: str = "signing",
              dist: dict[str, Any] | None = None, ts_ms: int | None = None,
              v: int = VERSION) -> dict[str, Any]:
    return {"v": v, "type": record_type, "origin": ORIGIN, "seq": seq, "prev": prev,
            "key": KEYS[signer].id, "ts": ts(seq) if ts_ms is None else ts_ms,
            "dist": dist or {"scope": "all"}}


def pdq_item(index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"hashes": [{"type": "pdq", "value": PDQ[index], "quality": 100}],
            "list": "ncii", "tier": "helpline_verified", **extra}


# -- a log that tracks head, key ring and state like a node does -----------------------------

@dataclass
class Log:
    """One origin's verified log, as a verifier builds it record by record."""

    origin: str = ORIGIN
    records: list[SignedRecord] = field(default_factory=list)
    keyring: KeyRing = field(default_factory=lambda: KeyRing(ORIGIN))
    head: LogHead | None = None
    version: int = VERSION  # the version ``sign`` writes

    def accept(self, data: bytes) -> SignedRecord:
        """Parse, verify and link ``data`` in the normative order; raise on any fault."""
        record = SignedRecord.from_bytes(data)
        verify(record, self.keyring)
        check_next(self.head, record)
        self.keyring.apply(record)
        self.head = LogHead.of(record)
        self.records.append(record)
        return record

    def sign(self, signer: str, body: dict[str, Any], record_type: str, *,
             dist: dict[str, Any] | None = None, seq: int | None = None,
             ts_ms: int | None = None) -> SignedRecord:
        """Sign the next record (or one at ``seq``) with the protocol's own signer."""
        seq = seq or (1 if self.head is None else self.head.seq + 1)
        prev = self.records[seq - 2].id if seq > 1 else None
        return sign_record(
            signer=KEYS[signer], origin=self.origin, seq=seq, prev=prev,
            ts=ts(seq) if ts_ms is None else ts_ms,
            body=BODY_CLASSES[record_type].from_json(body, "body", self.version),
            dist=Distribution.from_json(dist or {"scope": "all"}, "dist", self.version),
            version=self.version,
        )

    def extend(self, signer: str, body: dict[str, Any], record_type: str,
               **kwargs: Any) -> SignedRecord:
        return self.accept(self.sign(signer, body, record_type, **kwargs).raw)

    def lines(self) -> list[str]:
        return [text(r.raw) for r in self.records]


def salted(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the fixed salt of ``name`` (v2 add and feedback bodies carry one)."""
    return dict(body, salt=salt(name))


def rejection(log_lines: list[str], data: bytes) -> ProtocolError:
    """The error the implementation raises for ``data`` after the records ``log_lines``."""
    log = Log()
    for line in log_lines:
        log.accept(line.encode("utf-8"))
    try:
        log.accept(data)
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"the implementation accepts {data[:120]!r}")


# -- records.json ----------------------------------------------------------------------------

def record_vector(name: str, description: str, signer: str, record: SignedRecord,
                  body: dict[str, Any]) -> dict[str, Any]:
    head = record.head
    return {
        "name": name,
        "description": description,
        "inputs": {"signer": signer, "origin": head.origin, "seq": head.seq, "prev": head.prev,
                   "ts": head.ts, "dist": head.dist.to_json(), "type": head.type, "body": body},
        "body_canonical": text(canonical.encode(body)),
        "digest": head.digest,
        "head_canonical": text(record.head_bytes),
        "message": text(record.message),
        "signature": b64url_encode(record.sig),
        "id": record.id,
        "record": text(record.raw),
        "stub": text(record.stub().raw),
    }


RecordCase = tuple[str, str, str, str, dict[str, Any], dict[str, Any] | None]

RECORD_CASES_V1: list[RecordCase] = [
    ("key", "the root key authorises the signing key (seq 1)", "root", "key",
     {"signing_key": KEYS["signing"].id}, None),
    ("add_single_pdq", "one item with one pdq hash and its quality", "signing", "add",
     {"items": [pdq_item()]}, None),
    ("add_all_hash_types", "one item carrying every registered hash type, labels and expiry",
     "signing", "add",
     {"items": [{"hashes": [{"type": t, "value": example(t)} for t in sorted(HASH_TYPES)],
                 "labels": ["intimate", "reported:2023"], "list": "ncii",
                 "tier": "victim_submitted", "expires": ts(100)}]}, None),
    ("add_batch_group_scope", "three items under one signature, for one sharing group in two "
     "jurisdictions", "signing", "add",
     {"items": [pdq_item(1), pdq_item(2, labels=["sextortion"]),
                {"hashes": [{"type": "md5", "value": example("md5", 1)}], "list": "legacy",
                 "tier": "platform_confirmed"}]},
     {"scope": "group", "group": "eu-helplines", "jurisdictions": ["IE", "NL"]}),
    ("add_peers_scope", "direct peers only", "signing", "add", {"items": [pdq_item(3)]},
     {"scope": "peers"}),
    ("revoke", "withdraws one item of an earlier record and a whole record", "signing",
     "revoke", {"targets": [{"record": "@3", "item": 0}, {"record": "@2"}],
                "reason": "withdrawn"}, None),
    ("feedback", "a verdict on another origin's record; the note exercises UTF-8, escapes and "
     "a control character", "signing", "feedback",
     {"target": {"record": OTHER_RECORD, "item": 1}, "verdict": "confirmed",
      "note": "Café \"Ω\" \\ ok\u001f\u2028 \U0001f600 </script>"}, None),
    ("key_revoke", "the root key withdraws the signing key", "root", "key_revoke",
     {"signing_key": KEYS["signing"].id}, None),
]

RECORD_CASES: list[RecordCase] = [
    ("key", "the root key authorises the signing key (seq 1)", "root", "key",
     {"signing_key": KEYS["signing"].id}, None),
    ("add_single_pdq", "one item with one pdq hash and its quality; every add body carries "
     "a random salt", "signing", "add", salted("add_single_pdq", {"items": [pdq_item()]}),
     None),
    ("add_all_hash_types", "one item carrying every registered hash type, labels and expiry",
     "signing", "add", salted("add_all_hash_types",
     {"items": [{"hashes": [{"type": t, "value": example(t)} for t in sorted(HASH_TYPES)],
                 "labels": ["intimate", "reported:2023"], "list": "ncii",
                 "tier": "victim_submitted", "expires": ts(100)}]}), None),
    ("add_batch_group_scope", "three items under one signature, for one sharing group "
     "(an opaque 128-bit id) in two jurisdictions", "signing", "add",
     salted("add_batch_group_scope",
            {"items": [pdq_item(1), pdq_item(2, labels=["sextortion"]),
                       {"hashes": [{"type": "md5", "value": example("md5", 1)}],
                        "list": "legacy", "tier": "platform_confirmed"}]}),
     {"scope": "group", "group": GROUP, "jurisdictions": ["IE", "NL"]}),
    ("add_peers_scope", "direct peers only", "signing", "add",
     salted("add_peers_scope", {"items": [pdq_item(3)]}), {"scope": "peers"}),
    ("revoke", "withdraws one item of an earlier record and a whole record (scope 'all', "
     "no salt: a revoke always travels with its body)", "signing", "revoke",
     {"targets": [{"record": "@3", "item": 0}, {"record": "@2"}], "reason": "withdrawn"},
     None),
    ("feedback", "a verdict on the group-scoped record at seq 4, so it carries that record's "
     "distribution; the note exercises UTF-8, escapes and a control character", "signing",
     "feedback", salted("feedback", {"target": {"record": "@4", "item": 1},
                                     "verdict": "confirmed",
                                     "note": "Café \"Ω\" \\ ok\u001f\u2028 \U0001f600 </script>"}),
     {"scope": "group", "group": GROUP, "jurisdictions": ["IE", "NL"]}),
    ("key_revoke", "the root key withdraws the signing key; its last legitimate seq is 7",
     "root", "key_revoke", {"signing_key": KEYS["signing"].id, "last_seq": 7}, None),
]


def resolve_refs(body: dict[str, Any], log: Log) -> dict[str, Any]:
    """Replace ``"@n"`` record references with the id of the log's record at seq n."""
    encoded = json.dumps(body)
    for record in log.records:
        encoded = encoded.replace(f'"@{record.head.seq}"', json.dumps(record.id))
    result: dict[str, Any] = json.loads(encoded)
    return result


def build_records(version: int = VERSION) -> dict[str, Any]:
    log = Log(version=version)
    vectors = []
    for name, description, signer, record_type, raw_body, dist in (
            RECORD_CASES if version == VERSION else RECORD_CASES_V1):
        body = resolve_refs(raw_body, log)
        record = log.extend(signer, body, record_type, dist=dist)
        vectors.append(record_vector(name, description, signer, record, body))
    return {
        "description": "One valid record of each type, signed with fixed keys. The records "
                       "form one chain in this order. Check that signing 'inputs' with the "
                       "named key reproduces every other field exactly, and that 'record' and "
                       "'stub' parse and verify.",
        "keys": keys_json(),
        "domain": text(DOMAINS[version]),
        "vectors": vectors,
    }


def keys_json() -> dict[str, Any]:
    return {name: {"seed_hex": seed.hex(), "secret": KEYS[name].secret_text(),
                   "id": KEYS[name].id} for name, seed in SEEDS.items()}


# -- chains.json -----------------------------------------------------------------------------

def step(data: bytes, error: tuple[str, str] | None, log: Log) -> dict[str, Any]:
    if error is None:
        log.accept(data)
        return {"record": text(data), "expect": "ok"}
    exc = rejection(log.lines(), data)
    code, path = error
    if (exc.code, exc.path) != (code, path):
        raise AssertionError(f"expected {code} at {path}, got {exc.code} at {exc.path}: {exc}")
    return {"record": text(data), "expect": {"code": code, "path": path, "message": str(exc)}}


def active_refs(log: Log, now_ms: int) -> dict[str, Any]:
    state = State().apply_all(log.records)
    return {"now_ms": now_ms, "refs": [item.ref for item in state.active(now_ms)]}


def ring_checks(log: Log, checks: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Whether each (key name, seq) may sign a record of the log's origin now, after the
    whole scenario: how a record off the chain (a fork, evidence) is judged."""
    result: list[dict[str, Any]] = []
    for name, seq in checks:
        entry: dict[str, Any] = {"key": KEYS[name].id, "seq": seq}
        try:
            log.keyring.check(KEYS[name].id, seq)
        except ProtocolError as exc:
            entry["expect"] = {"code": exc.code, "path": exc.path, "message": str(exc)}
        else:
            entry["expect"] = "ok"
        result.append(entry)
    return result


def add(name: str, *items: dict[str, Any]) -> dict[str, Any]:
    """A salted v2 add body of ``items`` (one pdq item by default)."""
    return salted(name, {"items": list(items) or [pdq_item(0)]})


def build_rotation() -> dict[str, Any]:
    log = Log()
    steps = [
        step(log.sign("root", {"signing_key": KEYS["signing"].id}, "key").raw, None, log),
        step(log.sign("signing", add("rotation 2", pdq_item(0)), "add").raw, None, log),
        step(log.sign("signing", add("rotation 3", pdq_item(1), pdq_item(2, expires=ts(50))),
                      "add").raw, None, log),
    ]
    steps.append(step(log.sign("signing", {"targets": [{"record": log.records[1].id}],
                                           "reason": "erroneous"}, "revoke").raw, None, log))
    steps.append(step(log.sign("root", {"signing_key": KEYS["rotated"].id}, "key").raw,
                      None, log))
    steps.append(step(log.sign("rotated", add("rotation 6", pdq_item(3)), "add").raw, None, log))
    steps.append(step(log.sign("root", {"signing_key": KEYS["signing"].id, "last_seq": 4},
                               "key_revoke").raw, None, log))
    late = log.sign("signing", add("rotation late", pdq_item(0)), "add")
    steps.append(step(late.raw, ("KEY_REVOKED", "record.head.key"), log))
    steps.append(step(log.sign("rotated", {"targets": [{"record": log.records[2].id,
                                                         "item": 0}],
                                           "reason": "withdrawn"}, "revoke").raw, None, log))
    assert log.head is not None
    return {
        "name": "chain_rotation_revocation",
        "description": "seq 1 authorises 'signing'; adds, a revoke; seq 5 authorises 'rotated'; "
                       "seq 7 revokes 'signing' with last_seq 4; a seq-8 record signed by "
                       "'signing' is rejected (KEY_REVOKED) and leaves the log unchanged; "
                       "'rotated' then signs seq 8. 'active' lists the item refs in force "
                       "afterwards; 'ring_checks' whether a key may sign a seq now (for "
                       "records off the chain: 'signing' has lost seqs 5-7, which it covered "
                       "before the revocation).",
        "steps": steps,
        "head": log.head.to_json(),
        "active": [active_refs(log, ts(10)), active_refs(log, ts(50))],
        "ring_checks": ring_checks(log, [("signing", 4), ("signing", 5), ("signing", 7),
                                         ("rotated", 5), ("rotated", 6), ("root", 9)]),
    }


def build_key_windows() -> dict[str, Any]:
    log = Log()
    steps = [
        step(log.sign("root", {"signing_key": KEYS["signing"].id}, "key").raw, None, log),
        step(log.sign("signing", add("windows 2"), "add").raw, None, log),
        step(log.sign("root", {"signing_key": KEYS["signing"].id, "last_seq": 2},
                      "key_revoke").raw, None, log),
    ]
    gap = log.sign("signing", add("windows gap", pdq_item(1)), "add")
    steps.append(step(gap.raw, ("KEY_REVOKED", "record.head.key"), log))
    steps.append(step(log.sign("root", add("windows 4", pdq_item(1)), "add").raw, None, log))
    steps.append(step(log.sign("root", {"signing_key": KEYS["signing"].id}, "key").raw,
                      None, log))
    steps.append(step(log.sign("signing", add("windows 6", pdq_item(2)), "add").raw, None, log))
    assert log.head is not None
    return {
        "name": "key_windows",
        "description": "'signing' is granted at seq 1, revoked at seq 3 (last_seq 2) and "
                       "granted again at seq 5: the key ring keeps both windows, so the key "
                       "may sign seq 2 and seqs from 6 on, and nothing in between.",
        "steps": steps,
        "head": log.head.to_json(),
        "ring_checks": ring_checks(log, [("signing", 1), ("signing", 2), ("signing", 3),
                                         ("signing", 5), ("signing", 6), ("signing", 99)]),
    }


def build_migration() -> dict[str, Any]:
    log = Log(version=1)
    steps = [
        step(log.sign("root", {"signing_key": KEYS["signing"].id}, "key").raw, None, log),
        step(log.sign("signing", {"items": [pdq_item(0)]}, "add").raw, None, log),
        step(log.sign("signing", {"items": [pdq_item(1)]}, "add",
                      dist={"scope": "group", "group": "eu-helplines"}).raw, None, log),
        step(log.sign("root", {"signing_key": KEYS["rotated"].id}, "key").raw, None, log),
        step(log.sign("root", {"signing_key": KEYS["signing"].id}, "key_revoke").raw,
             None, log),
    ]
    log.version = VERSION
    steps.append(step(log.sign("rotated", add("migration 6", pdq_item(2)), "add",
                               dist={"scope": "group", "group": GROUP}).raw, None, log))
    steps.append(step(log.sign("rotated", {"targets": [{"record": log.records[1].id}],
                                           "reason": "withdrawn"}, "revoke").raw, None, log))
    late = log.sign("signing", add("migration late", pdq_item(3)), "add")
    steps.append(step(late.raw, ("KEY_REVOKED", "record.head.key"), log))
    assert log.head is not None
    return {
        "name": "migration_v1_to_v2",
        "description": "A v1 log (seqs 1-5: a grant, two adds, one with a v1 group name, a "
                       "rotation and a v1 key_revoke, which counts as last_seq 4) continues "
                       "with v2 records from seq 6: the chain links across versions, each "
                       "record verifies under its own version's domain, and v1 records keep "
                       "their meaning.",
        "steps": steps,
        "head": log.head.to_json(),
        "active": [active_refs(log, ts(10))],
        "ring_checks": ring_checks(log, [("signing", 4), ("signing", 5), ("rotated", 6)]),
    }


def build_equivocation() -> dict[str, Any]:
    log = Log()
    log.extend("root", {"signing_key": KEYS["signing"].id}, "key")
    log.extend("signing", add("equivocation 2"), "add")
    one = log.sign("signing", add("equivocation 3a", pdq_item(1)), "add")
    two = log.sign("signing", add("equivocation 3b", pdq_item(2)), "add")
    steps = [{"record": line, "expect": "ok"} for line in log.lines()]
    steps.append(step(one.raw, None, log))
    replay = rejection(log.lines(), two.raw)
    assert (replay.code, replay.path) == ("BAD_CHAIN", "record.head.seq"), replay
    evidence = detect_equivocation(one, two, log.records[:1])
    assert evidence is not None
    evidence.check_against(log.keyring)  # 'signing' is still valid: grounds to freeze
    return {
        "name": "equivocation",
        "description": "Two different records at seq 3, each valid after seq 2. Once the first "
                       "is in the log the second fails check_next (BAD_CHAIN, seq already in "
                       "the log); a node compares ids and builds the evidence, which verifies "
                       "offline knowing only the origin id, and also against the log's key "
                       "ring ('signing' is still valid), so it is grounds to freeze.",
        "steps": steps,
        "conflicting": text(two.raw),
        "conflicting_expect": {"code": replay.code, "path": replay.path,
                               "message": str(replay)},
        "evidence": evidence.to_json(),
    }


def build_chains() -> dict[str, Any]:
    return {
        "description": "Logs of one origin, checked record by record: parse, key validity, "
                       "signature, check_next against the head, then the key ring takes key "
                       "records into account. A rejected record leaves the log unchanged. "
                       "'ring_checks' ask the key ring after the last step whether a key may "
                       "sign a record at a seq (KeyRing.check).",
        "keys": keys_json(),
        "scenarios": [build_rotation(), build_key_windows(), build_migration(),
                      build_equivocation()],
    }


# -- invalid.json ----------------------------------------------------------------------------

@dataclass
class Invalid:
    name: str
    description: str
    code: str
    path: str
    make: Callable[[], bytes]
    log: int = 1  # how many records of the base log precede this one
    base: str = "base"  # which base log: BASES


def base_log() -> Log:
    """key (seq 1), add (seq 2), key_revoke of 'signing' with last_seq 2 (seq 3): the context
    of the cases."""
    log = Log()
    log.extend("root", {"signing_key": KEYS["signing"].id}, "key")
    log.extend("signing", add("base 2"), "add")
    log.extend("root", {"signing_key": KEYS["signing"].id, "last_seq": 2}, "key_revoke")
    return log


def leak_log() -> Log:
    """key (seq 1), add by 'signing' (seq 2), add by the root key (seq 3), key_revoke of
    'signing' with last_seq 2 (seq 4): 'signing' leaked after seq 2."""
    log = Log()
    log.extend("root", {"signing_key": KEYS["signing"].id}, "key")
    log.extend("signing", add("leak 2"), "add")
    log.extend("root", add("leak 3", pdq_item(1)), "add")
    log.extend("root", {"signing_key": KEYS["signing"].id, "last_seq": 2}, "key_revoke")
    return log


BASE = base_log()
BASES = {"base": BASE, "leak": leak_log()}
KEY_ID = BASE.records[0].id


def valid_add(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Head and body of a valid seq-2 add record by 'signing', with ``changes`` to the head."""
    head = head_json("add", 2, KEY_ID)
    head.update(changes)
    return head, add("invalid")


def add_with_item(**item: Any) -> bytes:
    head, body = valid_add()
    body["items"][0].update(item)
    return sign_raw(KEYS["signing"], head, body)


def add_with_hash(**hash_entry: Any) -> bytes:
    head, body = valid_add()
    body["items"][0]["hashes"][0] = hash_entry
    return sign_raw(KEYS["signing"], head, body)


def signed(head: dict[str, Any], body: Any, signer: str = "signing",
           **kwargs: Any) -> Callable[[], bytes]:
    return lambda: sign_raw(KEYS[signer], head, body, **kwargs)


def good() -> bytes:
    head, body = valid_add()
    return sign_raw(KEYS["signing"], head, body)


def edit(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


def photodna_item(size: int, seed: int = 0, labels: list[str] | None = None) -> dict[str, Any]:
    """An item with one photodna value of ``size`` bytes: the bulkiest hash a record holds."""
    raw = (hashlib.sha256(bytes([seed])).digest() * 33)[:size]
    item: dict[str, Any] = {"hashes": [{"type": "photodna",
                                        "value": base64.b64encode(raw).decode("ascii")}],
                            "list": "ncii", "tier": "victim_submitted"}
    if labels:
        item["labels"] = labels
    return item


def sized_add(size: int, signer: SigningKey, head: dict[str, Any]) -> bytes:
    """A canonical, correctly signed add of exactly ``size`` bytes (``size`` >= 2 KiB).

    The bulk is items with 1 KiB photodna values; one last item gets a shorter value (base64
    grows in steps of 4 characters) and labels that make up the remaining bytes exactly.
    """
    def length(items: list[dict[str, Any]]) -> int:
        return len(sign_raw(signer, head, {"items": items, "salt": salt("sized")}))

    per_item = length([photodna_item(1024)] * 2) - length([photodna_item(1024)])
    empty = length([photodna_item(3)]) - 4
    full = [photodna_item(1024, seed) for seed in range((size - empty - 300) // per_item)]
    remaining = size - length([*full, photodna_item(3)]) + 4
    chars = min(1368, (remaining - 100) // 4 * 4)
    last = photodna_item(chars // 4 * 3, seed=255)
    fill = remaining - chars
    for count in range(1, 17):
        labels = [format(i, "x") for i in range(count)]
        added = len(rfc8785.dumps(dict(last, labels=labels))) - len(rfc8785.dumps(last))
        if 0 <= fill - added <= 63 * count:
            extra = fill - added
            labels = [label + "x" * min(63, extra - 63 * i) if extra > 63 * i else label
                      for i, label in enumerate(labels)]
            break
    data = sign_raw(signer, head, {"items": [*full, dict(last, labels=labels)],
                                   "salt": salt("sized")})
    assert len(data) == size, (len(data), size)
    return data


def oversize() -> bytes:
    """A canonical, correctly signed add that is one byte over the record limit."""
    head, _ = valid_add()
    return sized_add(MAX_RECORD_BYTES + 1, KEYS["signing"], head)


def invalid_cases() -> list[Invalid]:
    head, body = valid_add()
    hpath = "record.body.items[0].hashes[0]"
    return [
        # -- encoding: size, UTF-8, strict JSON ------------------------------------------------
        Invalid("oversize", "canonical and validly signed, but 65,537 bytes", "OVERSIZE",
                "record", oversize),
        Invalid("invalid_utf8", "a byte 0xff inside the list name", "BAD_ENCODING", "record",
                lambda: edit(good(), b'"ncii"', b'"nc\xffi"')),
        Invalid("utf8_bom", "a UTF-8 byte order mark before the object", "BAD_ENCODING",
                "record", lambda: b"\xef\xbb\xbf" + good()),
        Invalid("float", "pdq quality written 99.5: canonical JCS, but hashmesh has no floats",
                "BAD_ENCODING", "record.body.items[0].hashes[0].quality",
                lambda: edit(good(), b'"quality":100', b'"quality":99.5')),
        Invalid("float_integral", "ts written 1700000002000.0", "BAD_ENCODING",
                "record.head.ts",
                lambda: edit(good(), b'"ts":1700000002000', b'"ts":1700000002000.0')),
        Invalid("exponent", "ts written 17e11", "BAD_ENCODING", "record.head.ts",
                lambda: edit(good(), b'"ts":1700000002000', b'"ts":17e11')),
        Invalid("huge_integer", "ts = 2^53, outside the safe integer range (signed as is)",
                "BAD_ENCODING", "record.head.ts",
                signed(dict(head, ts="@TS"), body, head_bytes=rfc8785.dumps(
                    dict(head, ts="@TS", digest=sha_body(body))).replace(
                        b'"@TS"', b"9007199254740992"))),
        Invalid("duplicate_key", "head has 'ts' twice", "BAD_ENCODING", "record",
                lambda: edit(good(), b'"ts":1700000002000', b'"ts":1700000002000,"ts":1')),
        Invalid("not_an_object", "a JSON array", "BAD_SCHEMA", "record", lambda: b"[]"),
        Invalid("lone_surrogate", "a note containing the escape \\ud800 (not a Unicode "
                "scalar value)", "BAD_ENCODING", "record.body.note",
                lambda: edit(feedback_record("@NOTE@"), b"@NOTE@", b"\\ud800")),
        # -- canonical form --------------------------------------------------------------------
        Invalid("whitespace", "a space after the first colon", "NON_CANONICAL", "record",
                lambda: edit(good(), b'{"body":{', b'{"body": {')),
        Invalid("trailing_newline", "the line terminator is not part of the record",
                "NON_CANONICAL", "record", lambda: good() + b"\n"),
        Invalid("key_order", "'head' before 'body'", "NON_CANONICAL", "record", key_order),
        Invalid("escaped_ascii", "'/' written as \\/ in the feedback note", "NON_CANONICAL",
                "record", lambda: edit(feedback_record("a/b"), b"a/b", b"a\\/b")),
        Invalid("escaped_non_ascii", "U+00E9 written as \\u00e9", "NON_CANONICAL", "record",
                lambda: edit(feedback_record("caf\u00e9"), "caf\u00e9".encode(),
                             b"caf\\u00e9")),
        Invalid("uppercase_escape", "control character U+001F written \\u001F, not \\u001f",
                "NON_CANONICAL", "record",
                lambda: edit(feedback_record("a\u001fb"), b"a\\u001fb", b"a\\u001Fb")),
        Invalid("negative_zero", "ts written -0", "NON_CANONICAL", "record",
                signed(dict(head, ts="@TS"), body, head_bytes=rfc8785.dumps(
                    dict(head, ts="@TS", digest=sha_body(body))).replace(b'"@TS"', b"-0"))),
        # -- schema ----------------------------------------------------------------------------
        Invalid("empty_labels", "an empty optional array: omit the field instead",
                "BAD_SCHEMA", "record.body.items[0].labels", lambda: add_with_item(labels=[])),
        Invalid("null_optional", "expires: null; optional fields are absent, never null",
                "BAD_SCHEMA", "record.body.items[0].expires",
                lambda: add_with_item(expires=None)),
        Invalid("unknown_envelope_field", "an extra top-level field", "UNKNOWN_FIELD",
                "record.meta", lambda: sign_raw_extra({"meta": 1})),
        Invalid("unknown_head_field", "an extra head field", "UNKNOWN_FIELD", "record.head.x",
                signed(dict(head, x=1), body)),
        Invalid("unknown_body_field", "an extra field in an item", "UNKNOWN_FIELD",
                "record.body.items[0].colour", lambda: add_with_item(colour="red")),
        Invalid("unknown_record_type", "type 'delete'", "UNKNOWN_TYPE", "record.head.type",
                signed(dict(head, type="delete"), body)),
        Invalid("unknown_version", "v = 3 (with a field v2 does not know)", "UNKNOWN_TYPE",
                "record.head.v", signed(dict(head, v=3, epoch=1), body)),
        Invalid("unknown_tier", "tier 'rumour'", "UNKNOWN_TYPE", "record.body.items[0].tier",
                lambda: add_with_item(tier="rumour")),
        Invalid("unknown_hash_type", "hash type 'sha1'", "UNKNOWN_HASH_TYPE", f"{hpath}.type",
                lambda: add_with_hash(type="sha1", value="0" * 40)),
        Invalid("bad_hash_value", "a pdq value of 63 hex characters", "BAD_HASH_VALUE",
                f"{hpath}.value", lambda: add_with_hash(type="pdq", value=PDQ[0][:63])),
        Invalid("bad_hash_character", "a pdq value with a 'g'", "BAD_HASH_VALUE",
                f"{hpath}.value", lambda: add_with_hash(type="pdq", value="g" + PDQ[0][1:])),
        Invalid("hash_not_normal_form", "an uppercase pdq value", "BAD_SCHEMA",
                f"{hpath}.value", lambda: add_with_hash(type="pdq", value=PDQ[0].upper())),
        Invalid("quality_out_of_range", "pdq quality 101", "BAD_SCHEMA", f"{hpath}.quality",
                lambda: add_with_hash(type="pdq", value=PDQ[0], quality=101)),
        Invalid("quality_on_exact_hash", "quality on an md5 hash", "BAD_SCHEMA",
                f"{hpath}.quality",
                lambda: add_with_hash(type="md5", value=example("md5"), quality=50)),
        Invalid("duplicate_hash_type", "two pdq hashes in one item", "BAD_SCHEMA",
                "record.body.items[0].hashes[1]",
                lambda: add_with_item(hashes=[{"type": "pdq", "value": PDQ[0]},
                                              {"type": "pdq", "value": PDQ[1]}])),
        Invalid("bad_origin_key", "an origin that is not a 32-byte key id", "BAD_KEY",
                "record.head.origin", signed(dict(head, origin="ed25519:AAAA"), body)),
        Invalid("no_items", "an add with no items", "BAD_SCHEMA", "record.body.items",
                signed(head, {"items": []})),
        Invalid("prev_at_seq_1", "prev set at seq 1", "BAD_SCHEMA", "record.head.prev",
                signed(head_json("key", 1, KEY_ID, signer="root"),
                       {"signing_key": KEYS["signing"].id}, signer="root"), log=0),
        Invalid("group_without_name", "scope 'group' without a group", "BAD_SCHEMA",
                "record.head.dist.group", signed(dict(head, dist={"scope": "group"}), body)),
        Invalid("padded_signature", "the signature with base64 padding", "BAD_SCHEMA",
                "record.sig", lambda: good()[:-2] + b'=="}'),
        Invalid("key_record_not_by_root", "a key record signed by a signing key",
                "BAD_SCHEMA", "record.head.key",
                signed(head_json("key", 2, KEY_ID), {"signing_key": KEYS["rotated"].id})),
        Invalid("key_record_not_scope_all", "a key record for direct peers only", "BAD_SCHEMA",
                "record.head.dist",
                signed(head_json("key", 2, KEY_ID, signer="root", dist={"scope": "peers"}),
                       {"signing_key": KEYS["rotated"].id}, signer="root")),
        Invalid("root_key_revoked", "a key_revoke of the root key itself", "BAD_SCHEMA",
                "record.body.signing_key",
                signed(head_json("key_revoke", 2, KEY_ID, signer="root"),
                       {"last_seq": 1, "signing_key": ORIGIN}, signer="root")),
        # -- version 2 schema ------------------------------------------------------------------
        Invalid("v2_add_without_salt", "a v2 add body without its salt", "BAD_SCHEMA",
                "record.body.salt", signed(head, {"items": [pdq_item(0)]})),
        Invalid("salt_wrong_length", "a salt of 15 bytes", "BAD_SCHEMA", "record.body.salt",
                signed(head, dict(body, salt=b64url_encode(bytes(15))))),
        Invalid("feedback_without_salt", "a v2 feedback body without its salt", "BAD_SCHEMA",
                "record.body.salt", signed(head_json("feedback", 2, KEY_ID),
                                           {"target": {"record": OTHER_RECORD},
                                            "verdict": "disputed"})),
        Invalid("v1_body_with_salt", "a v1 add whose body carries a salt", "UNKNOWN_FIELD",
                "record.body.salt", signed(dict(head, v=1), body)),
        Invalid("group_name_in_v2", "a readable group name where v2 wants an opaque id",
                "BAD_SCHEMA", "record.head.dist.group",
                signed(dict(head, dist={"scope": "group", "group": "eu-helplines"}), body)),
        Invalid("revoke_not_scope_all", "a v2 revoke for one group: revokes always travel "
                "with their body", "BAD_SCHEMA", "record.head.dist",
                signed(head_json("revoke", 2, KEY_ID, dist={"scope": "group", "group": GROUP}),
                       {"targets": [{"record": OTHER_RECORD}], "reason": "withdrawn"})),
        Invalid("key_revoke_without_last_seq", "a v2 key_revoke that does not say the key's "
                "last legitimate seq", "BAD_SCHEMA", "record.body.last_seq",
                signed(head_json("key_revoke", 2, KEY_ID, signer="root"),
                       {"signing_key": KEYS["signing"].id}, signer="root")),
        Invalid("key_revoke_last_seq_not_before", "last_seq equal to the key_revoke's own seq",
                "BAD_SCHEMA", "record.body.last_seq",
                signed(head_json("key_revoke", 2, KEY_ID, signer="root"),
                       {"last_seq": 2, "signing_key": KEYS["signing"].id}, signer="root")),
        # -- strict keys (SPEC §1.1) -----------------------------------------------------------
        Invalid("small_order_key", "head.key is the identity point, signed R = identity, "
                "S = 0: OpenSSL accepts that signature for any message, libsodium does not",
                "BAD_KEY", "record.head.key", lambda: r_identity_s_zero(head, body)),
        Invalid("non_canonical_key", "head.key encodes y = p + 1 (the identity, written "
                "non-canonically)", "BAD_KEY", "record.head.key",
                signed(dict(head, key=key_id(NON_CANONICAL)), body)),
        Invalid("mixed_order_key", "head.key is 'signing' plus a point of order 8: on the "
                "curve, not small, but outside the prime-order subgroup", "BAD_KEY",
                "record.head.key", signed(dict(head, key=key_id(MIXED_ORDER)), body)),
        # -- the verification rule (SPEC §5.1) -------------------------------------------------
        Invalid("signature_r_identity", "R = identity and S = h*a: the cofactorless equation "
                "holds (OpenSSL accepts) but R has small order (libsodium refuses)",
                "BAD_SIGNATURE", "record.sig", lambda: r_identity(head, body)),
        Invalid("signature_s_not_canonical", "a valid signature with L added to S",
                "BAD_SIGNATURE", "record.sig", lambda: s_plus_l(good())),
        # -- body digest -----------------------------------------------------------------------
        Invalid("digest_mismatch", "the body was changed after signing (other pdq value)",
                "BODY_DIGEST_MISMATCH", "record.body",
                lambda: edit(good(), PDQ[0].encode(), PDQ[1].encode())),
        # -- keys and signature ----------------------------------------------------------------
        Invalid("forged_signature", "head.key is 'signing' but the stranger signed",
                "BAD_SIGNATURE", "record.sig", signed(head, body, signer="stranger")),
        Invalid("signature_without_domain", "signature over the head bytes without the "
                "domain prefix", "BAD_SIGNATURE", "record.sig",
                signed(head, body, message=rfc8785.dumps(dict(head, digest=sha_body(body))))),
        Invalid("signature_over_envelope", "signature over the canonical envelope without "
                "'sig' (the scheme DESIGN.md first described)", "BAD_SIGNATURE", "record.sig",
                signed(head, body, message=DOMAIN + rfc8785.dumps(
                    {"body": body, "head": dict(head, digest=sha_body(body))}))),
        Invalid("head_changed_after_signing", "ts changed after signing", "BAD_SIGNATURE",
                "record.sig",
                lambda: edit(good(), b'"ts":1700000002000', b'"ts":1700000002001')),
        Invalid("wrong_key", "the stranger signs with its own key, claiming the origin",
                "KEY_NOT_AUTHORISED", "record.head.key",
                signed(dict(head, key=KEYS["stranger"].id), body, signer="stranger")),
        Invalid("key_before_authorisation", "'signing' signs seq 1, before any key record",
                "KEY_NOT_AUTHORISED", "record.head.key",
                signed(head_json("add", 1, None), body), log=0),
        Invalid("revoked_key", "'signing' signs seq 4 after its key_revoke at seq 3",
                "KEY_REVOKED", "record.head.key",
                signed(head_json("add", 4, BASE.records[2].id), body), log=3),
        Invalid("revoked_key_at_covered_seq", "'signing' signs a second seq 3, where its "
                "key_revoke (last_seq 2) stands: a seq the key covered under v1 rules",
                "KEY_REVOKED", "record.head.key",
                signed(head_json("add", 3, BASE.records[1].id), body), log=3),
        Invalid("leaked_key_below_revocation", "'signing' forges seq 3 (the root key signed "
                "it) after the key_revoke at seq 4 says its last legitimate seq is 2",
                "KEY_REVOKED", "record.head.key",
                signed(head_json("add", 3, BASES["leak"].records[1].id), body), log=4,
                base="leak"),
        # -- chain -----------------------------------------------------------------------------
        Invalid("gap", "seq 3 after seq 1", "GAP", "record.head.seq",
                signed(head_json("add", 3, KEY_ID), body)),
        Invalid("wrong_prev", "seq 2 whose prev is not the id of seq 1", "WRONG_PREV",
                "record.head.prev", signed(head_json("add", 2, OTHER_RECORD), body)),
        Invalid("seq_already_in_log", "the record at seq 2 arrives again", "BAD_CHAIN",
                "record.head.seq", lambda: BASE.records[1].raw, log=2),
        Invalid("ts_backwards", "ts earlier than the previous record's", "BAD_CHAIN",
                "record.head.ts", signed(head_json("add", 2, KEY_ID, ts_ms=T0), body)),
    ]


# -- keys and signatures that implementations disagree on -------------------------------------

ED25519_P = 2**255 - 19
ED25519_L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")
NON_CANONICAL = (ED25519_P + 1).to_bytes(32, "little")
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
MIXED_ORDER = nacl.bindings.crypto_core_ed25519_add(KEYS["signing"].public.raw, ORDER_8)


def key_id(raw: bytes) -> str:
    return "ed25519:" + b64url_encode(raw)


def secret_scalar(seed: bytes) -> int:
    """Ed25519's secret scalar a of a seed (RFC 8032 §5.1.5: clamped SHA-512 lower half)."""
    a = bytearray(hashlib.sha512(seed).digest()[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return int.from_bytes(a, "little")


def signature_r_identity(seed: bytes, message: bytes) -> bytes:
    """R = identity, S = h*a mod L: [S]B - [h]A is the identity, so the cofactorless equation
    holds; only a check that R is not of small order refuses it."""
    public = SigningKey(seed).public.raw
    h = int.from_bytes(hashlib.sha512(IDENTITY + public + message).digest(), "little")
    return IDENTITY + (h * secret_scalar(seed) % ED25519_L).to_bytes(32, "little")


def with_signature(head: dict[str, Any], body: Any, make: Callable[[bytes], bytes]) -> bytes:
    """``head`` and ``body`` signed by ``make(message)`` instead of a real signer."""
    class Signer:
        def sign(self, message: bytes) -> bytes:
            return make(message)
    return sign_raw(Signer(), head, body)  # type: ignore[arg-type]


def r_identity_s_zero(head: dict[str, Any], body: Any) -> bytes:
    return with_signature(dict(head, key=key_id(IDENTITY)), body,
                          lambda message: IDENTITY + bytes(32))


def r_identity(head: dict[str, Any], body: Any) -> bytes:
    return with_signature(head, body,
                          lambda message: signature_r_identity(SEEDS["signing"], message))


def s_plus_l(data: bytes) -> bytes:
    """The record with L added to its signature's S (still < 2^256, equation unchanged)."""
    record = SignedRecord.from_bytes(data)
    s_value = int.from_bytes(record.sig[32:], "little") + ED25519_L
    sig = record.sig[:32] + s_value.to_bytes(32, "little")
    return data.replace(b64url_encode(record.sig).encode(), b64url_encode(sig).encode())


def sha_body(body: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def sign_raw_extra(extra: dict[str, Any]) -> bytes:
    head, body = valid_add()
    return sign_raw(KEYS["signing"], head, body, extra=extra)


def key_order() -> bytes:
    record = SignedRecord.from_bytes(good())
    data = rfc8785.dumps({"head": record.head.to_json()})[:-1] + b',"body":' + rfc8785.dumps(
        record.to_json()["body"]) + b',"sig":"' + b64url_encode(record.sig).encode() + b'"}'
    return data


def feedback_record(note: str) -> bytes:
    body = salted("feedback", {"target": {"record": OTHER_RECORD}, "verdict": "disputed",
                               "note": note})
    return sign_raw(KEYS["signing"], head_json("feedback", 2, KEY_ID), body)


def build_invalid_records() -> list[dict[str, Any]]:
    vectors = []
    for case in invalid_cases():
        data = case.make()
        log_lines = BASES[case.base].lines()[:case.log]
        exc = rejection(log_lines, data)
        if (exc.code, exc.path) != (case.code, case.path):
            raise AssertionError(f"{case.name}: expected {case.code} at {case.path}, "
                                 f"got {exc.code} at {exc.path}: {exc}")
        vector: dict[str, Any] = {"name": case.name, "description": case.description,
                                  "log": log_lines}
        try:
            vector["record"] = data.decode("utf-8")
        except UnicodeDecodeError:
            vector["record_hex"] = data.hex()
        vector["expect"] = {"code": case.code, "path": case.path, "message": str(exc)}
        vectors.append(vector)
    return vectors


# -- invalid evidence ------------------------------------------------------------------------

def build_invalid_evidence() -> list[dict[str, Any]]:
    log = Log()
    log.extend("root", {"signing_key": KEYS["signing"].id}, "key")
    one = log.sign("signing", add("evidence 2a", pdq_item(1)), "add")
    two = log.sign("signing", add("evidence 2b", pdq_item(2)), "add")
    log.accept(one.raw)
    later = log.sign("signing", add("evidence 3", pdq_item(3)), "add")
    found = detect_equivocation(one, two, log.records)
    assert found is not None
    good_evidence = found.to_json()
    first, second = good_evidence["first"], good_evidence["second"]
    stranger = Log(origin=KEYS["stranger"].id, keyring=KeyRing(KEYS["stranger"].id))
    foreign_grant = stranger.sign("stranger", {"signing_key": KEYS["signing"].id}, "key")
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [  # checked offline
        ("wrong_kind", "kind is not 'equivocation'", dict(good_evidence, kind="fork"),
         "BAD_EVIDENCE", "evidence.kind"),
        ("unknown_field", "an extra field", dict(good_evidence, note="x"), "UNKNOWN_FIELD",
         "evidence.note"),
        ("same_record_twice", "first and second are one record",
         dict(good_evidence, second=first), "BAD_EVIDENCE", "evidence"),
        ("unsorted", "first and second not sorted by id",
         dict(good_evidence, first=second, second=first), "BAD_EVIDENCE", "evidence"),
        ("different_seq", "the records are at seq 2 and seq 3",
         dict(good_evidence, second=later.stub().to_json()), "BAD_EVIDENCE", "evidence"),
        ("body_present", "a conflicting record with its body", with_body(good_evidence, one, two),
         "BAD_EVIDENCE", "evidence.first.body"),
        ("tampered_signature", "the second record's signature altered",
         dict(good_evidence, second=dict(second, sig=flip_sig(second["sig"]))),
         "BAD_EVIDENCE", "evidence.second.sig"),
        ("missing_key_record", "no key record for the non-root signing key",
         dict(good_evidence, key_records=[]), "BAD_EVIDENCE", "evidence.first.head.key"),
        ("foreign_key_record", "the signing key is authorised by another origin's root key",
         dict(good_evidence, key_records=[foreign_grant.to_json()]), "BAD_EVIDENCE",
         "evidence.first.head.key"),
    ]
    vectors = []
    contexts: dict[str, list[str]] = {}
    for name, description, value, code, path, log_lines in revoked_key_evidence():
        cases.append((name, description, value, code, path))
        contexts[name] = log_lines
    for name, description, value, code, path in cases:
        context = contexts.get(name)
        keyring = None if context is None else ring_of(context)
        try:
            Evidence.from_json(value, keyring=keyring)
        except ProtocolError as exc:
            if (exc.code, exc.path) != (code, path):
                raise AssertionError(f"evidence {name}: expected {code} at {path}, got "
                                     f"{exc.code} at {exc.path}: {exc}") from None
            vector: dict[str, Any] = {"name": name, "description": description}
            if context is not None:
                vector["log"] = context
            vectors.append(dict(vector, evidence=value,
                                expect={"code": code, "path": path, "message": str(exc)}))
            continue
        raise AssertionError(f"evidence {name} was accepted")
    return vectors


def ring_of(log_lines: list[str]) -> KeyRing:
    """The key ring of ORIGIN after the records ``log_lines`` (each verified in order)."""
    log = Log()
    for line in log_lines:
        log.accept(line.encode("utf-8"))
    return log.keyring


def revoked_key_evidence() -> list[tuple[str, str, dict[str, Any], str, str, list[str]]]:
    """Evidence that verifies offline but names a key the verifier's ring has withdrawn: a
    peer fault, not grounds to freeze the origin (SPEC §11.1)."""
    leak = BASES["leak"]  # 'signing' granted at 1, signs 2, root signs 3, revoked at 4 (last 2)
    forged_3 = leak.sign("signing", add("forged 3", pdq_item(2)), "add", seq=3)
    outside = detect_equivocation(leak.records[2], forged_3, leak.records)
    forged_2 = leak.sign("signing", add("forged 2", pdq_item(3)), "add", seq=2)
    withdrawn = detect_equivocation(leak.records[1], forged_2, leak.records)
    assert outside is not None and withdrawn is not None
    outside_name = "first" if outside.first.id == forged_3.id else "second"
    return [
        ("key_outside_window", "'signing' signs seq 3, past the last_seq 2 its key_revoke "
         "states: refused against the ring of 'log'", outside.to_json(), "KEY_REVOKED",
         f"evidence.{outside_name}.head.key", leak.lines()),
        ("key_withdrawn_since", "two records of 'signing' at seq 2, inside its window, but the "
         "root key has withdrawn it since: what a thief of the key can make at will",
         withdrawn.to_json(), "KEY_REVOKED", "evidence.first.head.key", leak.lines()),
    ]


def with_body(evidence: dict[str, Any], one: SignedRecord, two: SignedRecord) -> dict[str, Any]:
    full = {r.id: r.to_json() for r in (one, two)}
    return dict(evidence, first=full[min(full)])


def flip_sig(sig: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[0] ^= 1
    return b64url_encode(bytes(raw))


def build_invalid() -> dict[str, Any]:
    return {
        "description": "Inputs every implementation must reject with the given error code at "
                       "the given path ('message' is informative). For a record: accept the "
                       "'log' records in order (they are valid), then the record under test, "
                       "given as UTF-8 text in 'record' or as hex bytes in 'record_hex'. For "
                       "evidence: parse and verify the 'evidence' object.",
        "keys": keys_json(),
        "records": build_invalid_records(),
        "evidence": build_invalid_evidence(),
    }


# -- output ----------------------------------------------------------------------------------

# -- signatures.json -------------------------------------------------------------------------

SIGNATURE_MESSAGE = DOMAIN + b'{"vector":"signature rule"}'


def build_signatures() -> dict[str, Any]:
    """The pinned Ed25519 rule on bare (key, message, signature) triples.

    ``valid`` is what SPEC §5.1 says (and this implementation does); ``openssl_accepts`` is
    written by hand from OpenSSL's EVP Ed25519 (as the ``cryptography`` package exposes it), to
    show where two common implementations disagree and why the rule is pinned.
    """
    message = SIGNATURE_MESSAGE
    signer = KEYS["signing"]
    good = signer.sign(message)
    s_value = int.from_bytes(good[32:], "little") + ED25519_L
    cases = [
        ("valid", "an ordinary signature", signer.public.raw, good, True, True),
        ("r_identity_s_zero_identity_key", "key = identity, R = identity, S = 0: the "
         "cofactorless equation holds for any message; libsodium refuses the small-order key "
         "and R", IDENTITY, IDENTITY + bytes(32), False, True),
        ("r_identity_valid_key", "a strict key, R = identity, S = h*a mod L: the equation "
         "holds; libsodium refuses R of small order", signer.public.raw,
         signature_r_identity(SEEDS["signing"], message), False, True),
        ("s_not_canonical", "the valid signature with L added to S (S >= L)",
         signer.public.raw, good[:32] + s_value.to_bytes(32, "little"), False, False),
    ]
    vectors = []
    for name, description, public, signature, valid, openssl in cases:
        assert is_strict_point(public) and PublicKey(public).verify(message, signature) \
            if valid else not (is_strict_point(public)
                               and PublicKey(public).verify(message, signature)), name
        vectors.append({"name": name, "description": description, "public_key_hex": public.hex(),
                        "message_hex": message.hex(), "signature_hex": signature.hex(),
                        "valid": valid, "openssl_accepts": openssl})
    return {
        "description": "The Ed25519 verification rule of SPEC §5.1 (libsodium's): 'valid' is "
                       "whether a hashmesh implementation must accept the signature over the "
                       "message under the key (a key that is not a strict point is refused "
                       "as a key id before any signature is checked). 'openssl_accepts' is "
                       "informative: OpenSSL's Ed25519 accepts the two R = identity cases, so "
                       "an implementation built on it must add the checks of §5.1.",
        "vectors": vectors,
    }


def build() -> dict[str, dict[str, Any]]:
    """Every vector file's content, keyed by file name."""
    return {"records.json": build_records(), "records_v1.json": build_records(1),
            "chains.json": build_chains(), "invalid.json": build_invalid(),
            "signatures.json": build_signatures()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed vectors differ from the generated ones")
    args = parser.parse_args(argv)
    stale = []
    for name, document in build().items():
        path = VECTORS_DIR / name
        content = render(document)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(name)
        else:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path} ({len(content.encode('utf-8')):,} bytes)")
    if stale:
        print(f"stale vectors: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
