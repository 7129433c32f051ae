"""The committed test vectors: this implementation reproduces or rejects each one exactly.

Every entry of every ``protocol/vectors/*.json`` file becomes one test case. The checks use
only what the files say (key seeds, inputs, bytes), as another implementation would. A second
test regenerates the vectors and compares them with the committed files, so they cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hashmesh.protocol
from hashmesh.protocol import canonical, errors
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.evidence import Evidence
from hashmesh.protocol.keys import PublicKey, SigningKey, b64url_encode, is_strict_point
from hashmesh.protocol.log import LogHead, check_next, detect_equivocation
from hashmesh.protocol.records import BODY_CLASSES, DOMAINS, Distribution, SignedRecord
from hashmesh.protocol.signing import KeyRing, sign_record, verify, verify_signature
from hashmesh.protocol.state import State
from tests.protocol import generate_vectors

VECTORS = Path(hashmesh.protocol.__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return document


RECORDS, CHAINS, INVALID = load("records.json"), load("chains.json"), load("invalid.json")
RECORDS_V1, SIGNATURES = load("records_v1.json"), load("signatures.json")
# Each records file holds one version's records; its domain prefix says which.
RECORD_FILES = [RECORDS, RECORDS_V1]
RECORD_VECTORS = [(doc, v) for doc in RECORD_FILES for v in doc["vectors"]]


def version_of(document: dict[str, Any]) -> int:
    return next(v for v, domain in DOMAINS.items() if domain.decode() == document["domain"])


def record_cases(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
    return pytest.mark.parametrize(
        ("document", "vector"), entries,
        ids=[f"v{version_of(doc)}-{v['name']}" for doc, v in entries])


def cases(entries: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vector", entries, ids=[e["name"] for e in entries])


class Verifier:
    """A verifier of one origin's log, fed record bytes in order, as a node would."""

    def __init__(self, origin: str) -> None:
        self.keyring = KeyRing(origin)
        self.head: LogHead | None = None
        self.records: list[SignedRecord] = []

    def accept(self, data: bytes) -> SignedRecord:
        record = SignedRecord.from_bytes(data)
        verify(record, self.keyring)
        check_next(self.head, record)
        self.keyring.apply(record)
        self.head = LogHead.of(record)
        self.records.append(record)
        return record

    def rejects(self, data: bytes) -> ProtocolError:
        before = (self.head, dict(self.keyring.windows))
        with pytest.raises(ProtocolError) as info:
            self.accept(data)
        assert (self.head, self.keyring.windows) == before  # a rejected record changes nothing
        return info.value


def keys(document: dict[str, Any]) -> dict[str, SigningKey]:
    result = {}
    for name, key in document["keys"].items():
        signing_key = SigningKey(bytes.fromhex(key["seed_hex"]))
        assert signing_key.id == key["id"]
        assert signing_key.secret_text() == key["secret"]
        result[name] = signing_key
    return result


def origin_of(document: dict[str, Any]) -> str:
    return keys(document)["root"].id


def expect_error(exc: ProtocolError, expect: dict[str, Any]) -> None:
    assert (exc.code, exc.path) == (expect["code"], expect["path"]), str(exc)
    assert str(exc) == expect["message"]


# -- records.json ------------------------------------------------------------------------------

@record_cases(RECORD_VECTORS)
def test_signing_the_inputs_reproduces_the_vector_exactly(document: dict[str, Any],
                                                          vector: dict[str, Any]) -> None:
    inputs, version = vector["inputs"], version_of(document)
    body = BODY_CLASSES[inputs["type"]].from_json(inputs["body"], "body", version)
    record = sign_record(
        signer=keys(document)[inputs["signer"]], origin=inputs["origin"], seq=inputs["seq"],
        prev=inputs["prev"], ts=inputs["ts"], body=body,
        dist=Distribution.from_json(inputs["dist"], "dist", version), version=version)
    assert canonical.encode(inputs["body"]).decode() == vector["body_canonical"]
    assert record.head.digest == vector["digest"]
    assert record.head_bytes.decode() == vector["head_canonical"]
    assert (DOMAINS[version] + record.head_bytes).decode() == vector["message"]
    assert b64url_encode(record.sig) == vector["signature"]
    assert record.id == vector["id"]
    assert record.raw.decode() == vector["record"]
    assert record.stub().raw.decode() == vector["stub"]


@record_cases(RECORD_VECTORS)
def test_vector_record_and_stub_parse_and_verify(document: dict[str, Any],
                                                 vector: dict[str, Any]) -> None:
    for line in (vector["record"], vector["stub"]):
        record = SignedRecord.from_bytes(line.encode("utf-8"))
        verify_signature(record)
        assert record.id == vector["id"]
        assert record.head.v == version_of(document)


@pytest.mark.parametrize("document", RECORD_FILES, ids=["v2", "v1"])
def test_vector_records_form_one_valid_chain(document: dict[str, Any]) -> None:
    verifier = Verifier(origin_of(document))
    for vector in document["vectors"]:
        verifier.accept(vector["record"].encode("utf-8"))


# -- chains.json -------------------------------------------------------------------------------

def run_steps(scenario: dict[str, Any]) -> Verifier:
    verifier = Verifier(origin_of(CHAINS))
    for step in scenario["steps"]:
        data = step["record"].encode("utf-8")
        if step["expect"] == "ok":
            verifier.accept(data)
        else:
            expect_error(verifier.rejects(data), step["expect"])
    return verifier


@cases(CHAINS["scenarios"])
def test_chain_scenario_accepts_and_rejects_each_step_as_recorded(
        vector: dict[str, Any]) -> None:
    verifier = run_steps(vector)
    if "head" in vector:
        assert verifier.head is not None and verifier.head.to_json() == vector["head"]
    for expected in vector.get("active", []):
        state = State().apply_all(verifier.records)
        assert [a.ref for a in state.active(expected["now_ms"])] == expected["refs"]
    for check in vector.get("ring_checks", []):
        if check["expect"] == "ok":
            verifier.keyring.check(check["key"], check["seq"])
        else:
            with pytest.raises(ProtocolError) as info:
                verifier.keyring.check(check["key"], check["seq"])
            expect_error(info.value, check["expect"])


def equivocation_scenarios() -> Iterator[dict[str, Any]]:
    return (s for s in CHAINS["scenarios"] if "evidence" in s)


@cases(list(equivocation_scenarios()))
def test_conflicting_record_yields_exactly_the_recorded_evidence(vector: dict[str, Any]) -> None:
    verifier = run_steps(vector)
    conflicting = vector["conflicting"].encode("utf-8")
    expect_error(verifier.rejects(conflicting), vector["conflicting_expect"])
    other = SignedRecord.from_bytes(conflicting)
    known = verifier.records[other.head.seq - 1]
    evidence = detect_equivocation(known, other, verifier.records)
    assert evidence is not None
    assert evidence.to_json() == vector["evidence"]
    assert Evidence.from_json(vector["evidence"]) == evidence
    assert Evidence.from_json(vector["evidence"], keyring=verifier.keyring) == evidence


# -- invalid.json ------------------------------------------------------------------------------

@cases(INVALID["records"])
def test_invalid_record_is_rejected_with_the_recorded_code_and_path(
        vector: dict[str, Any]) -> None:
    verifier = Verifier(origin_of(INVALID))
    for line in vector["log"]:
        verifier.accept(line.encode("utf-8"))
    data = (vector["record"].encode("utf-8") if "record" in vector
            else bytes.fromhex(vector["record_hex"]))
    expect_error(verifier.rejects(data), vector["expect"])


@cases(INVALID["evidence"])
def test_invalid_evidence_is_rejected_with_the_recorded_code_and_path(
        vector: dict[str, Any]) -> None:
    keyring = None
    if "log" in vector:  # judged against the key ring of these records, not offline
        verifier = Verifier(origin_of(INVALID))
        for line in vector["log"]:
            verifier.accept(line.encode("utf-8"))
        keyring = verifier.keyring
        Evidence.from_json(vector["evidence"])  # it does verify offline
    with pytest.raises(ProtocolError) as info:
        Evidence.from_json(vector["evidence"], keyring=keyring)
    expect_error(info.value, vector["expect"])


def test_every_specific_error_code_has_an_invalid_vector() -> None:
    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, ProtocolError)}
    # Abstract parents, and EQUIVOCATION, which chains.json shows as evidence.
    codes -= {"PROTOCOL_ERROR", "VERIFICATION_FAILED", "EQUIVOCATION"}
    covered = {v["expect"]["code"] for v in INVALID["records"] + INVALID["evidence"]}
    assert codes - covered == set()


# -- signatures.json ---------------------------------------------------------------------------

@cases(SIGNATURES["vectors"])
def test_signature_vector_follows_the_pinned_rule(vector: dict[str, Any]) -> None:
    public = bytes.fromhex(vector["public_key_hex"])
    message = bytes.fromhex(vector["message_hex"])
    signature = bytes.fromhex(vector["signature_hex"])
    accepted = is_strict_point(public) and PublicKey(public).verify(message, signature)
    assert accepted == vector["valid"]


@cases(SIGNATURES["vectors"])
def test_signature_vector_records_what_openssl_does(vector: dict[str, Any]) -> None:
    """The disagreement the rule settles: OpenSSL (through ``cryptography``) accepts the
    R = identity signatures that libsodium, and so hashmesh, refuses."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key_hex"]))
    try:
        key.verify(bytes.fromhex(vector["signature_hex"]), bytes.fromhex(vector["message_hex"]))
    except InvalidSignature:
        accepted = False
    else:
        accepted = True
    assert accepted == vector["openssl_accepts"]


# -- no drift ----------------------------------------------------------------------------------

# Vector files written by generators of their own, each checked by its own test.
# vector files with a generator and test of their own
OTHER_GENERATORS = (
    "profiles.json",  # tests/protocol/test_profile_vectors.py
    "checkpoints.json",  # tests/protocol/test_checkpoints.py
    "receipts.json",  # tests/protocol/generate_receipt_vectors.py
)


def test_committed_vectors_equal_what_the_generator_produces_now() -> None:
    generated = generate_vectors.build()
    assert sorted(p.name for p in VECTORS.glob("*.json")) == sorted(
        [*generated, *OTHER_GENERATORS])
    for name, document in generated.items():
        committed = (VECTORS / name).read_text(encoding="utf-8")
        assert committed == generate_vectors.render(document), (
            f"protocol/vectors/{name} is stale: run python tests/protocol/generate_vectors.py")
