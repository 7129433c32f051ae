"""The record schema: every field checked, every rejection located, one encoding per record."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import OversizeError, ProtocolError, SchemaError
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.records import (
    BODY_CLASSES,
    MAX_RECORD_BYTES,
    AddBody,
    Distribution,
    Head,
    SignedRecord,
    Target,
    body_digest,
    never_stubbed,
    stub_refusal,
)
from hashmesh.protocol.signing import sign_record
from tests.protocol import generate_vectors
from tests.protocol.builders import (
    ORIGIN,
    PDQ,
    ROOT,
    SIGNER,
    T0,
    add_body,
    resign,
)

PREV = "ab" * 32
RECORD_ID = "cd" * 32


SALT = "c2FsdHNhbHRzYWx0c2FsdA"  # 16 fixed bytes ("saltsaltsaltsalt")
GROUP_ID = "0123456789abcdef0123456789abcdef"


def signed_add(body: AddBody | None = None, dist: Distribution | None = None) -> SignedRecord:
    return sign_record(signer=SIGNER, origin=ORIGIN, seq=2, prev=PREV, ts=T0,
                       body=body or add_body(), dist=dist)


def envelope(record_type: str = "add") -> dict[str, Any]:
    """A valid envelope as JSON, to be edited by a test and re-signed."""
    bodies: dict[str, dict[str, Any]] = {
        "add": {"items": [{"hashes": [{"type": "pdq", "value": PDQ[0], "quality": 90}],
                           "labels": ["intimate"], "list": "ncii",
                           "tier": "victim_submitted", "expires": T0 + 10**6}], "salt": SALT},
        "revoke": {"targets": [{"record": RECORD_ID, "item": 0}], "reason": "withdrawn"},
        "feedback": {"target": {"record": RECORD_ID}, "verdict": "disputed", "note": "n",
                     "salt": SALT},
        "key": {"signing_key": SIGNER.id},
        "key_revoke": {"signing_key": SIGNER.id, "last_seq": 1},
        "profile": {"name": "Helpline Nord", "jurisdiction": "DE", "contact": "a@b.example"},
        "receipt": {"targets": [{"record": RECORD_ID, "kind": "active", "applied": T0 - 5}],
                    "salt": SALT},
    }
    signer = ROOT if record_type in ("key", "key_revoke") else SIGNER
    body = BODY_CLASSES[record_type].from_json(bodies[record_type], "body")
    record = sign_record(signer=signer, origin=ORIGIN, seq=2, prev=PREV, ts=T0, body=body)
    return copy.deepcopy(record.to_json())


def parse_edited(edit: Callable[[dict[str, Any]], object], record_type: str = "add") -> None:
    """Apply ``edit`` to a valid envelope, recompute digest and signature, and parse it."""
    value = envelope(record_type)
    original_sig = value["sig"]
    edit(value)
    if "head" in value and value["sig"] == original_sig:  # the edit left the signature alone
        value["head"]["digest"] = generate_vectors.sha_body(value["body"])
        signer = ROOT if value["head"].get("key") == ORIGIN else SIGNER
        SignedRecord.from_bytes(resign(value, signer))
    else:
        SignedRecord.from_bytes(canonical.encode(value))


def item(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = value["body"]["items"][0]
    return result


def set_in(path: list[str | int], new: object) -> Callable[[dict[str, Any]], None]:
    def edit(value: dict[str, Any]) -> None:
        target: Any = value
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
    return edit


def delete(path: list[str | int]) -> Callable[[dict[str, Any]], None]:
    def edit(value: dict[str, Any]) -> None:
        target: Any = value
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


H = ["body", "items", 0, "hashes", 0]
I0 = ["body", "items", 0]

REJECTIONS: list[tuple[str, Callable[[dict[str, Any]], object], str, str, str]] = [
    # (record type, edit, code, path under "record.", message fragment)
    ("add", delete(["head", "ts"]), "BAD_SCHEMA", "head.ts", "missing required field"),
    ("add", set_in(["head", "seq"], 0), "BAD_SCHEMA", "head.seq", "between 1 and"),
    ("add", set_in(["head", "seq"], "2"), "BAD_SCHEMA", "head.seq", "got string"),
    ("add", set_in(["head", "seq"], True), "BAD_SCHEMA", "head.seq", "got boolean"),
    ("add", set_in(["head", "ts"], -1), "BAD_SCHEMA", "head.ts", "between 0 and"),
    ("add", set_in(["head", "v"], "1"), "BAD_SCHEMA", "head.v", "got string"),
    ("add", set_in(["head", "v"], 0), "UNKNOWN_TYPE", "head.v", "unsupported record version 0"),
    ("add", set_in(["head", "origin"], "ed25519:AAAA"), "BAD_KEY", "head.origin",
     "must be 32 bytes"),
    ("add", set_in(["head", "key"], 7), "BAD_KEY", "head.key", "expected 'ed25519:"),
    ("add", set_in(["head", "prev"], None), "BAD_SCHEMA", "head.prev", "expected a string"),
    ("add", set_in(["head", "prev"], PREV.upper()), "BAD_SCHEMA", "head.prev",
     "invalid record id"),
    ("add", set_in(["head", "dist"], {"scope": "world"}), "UNKNOWN_TYPE", "head.dist.scope",
     "unknown value 'world'"),
    ("add", set_in(["head", "dist"], {"scope": "all", "group": GROUP_ID}), "BAD_SCHEMA",
     "head.dist.group", "only allowed when scope is 'group'"),
    ("add", set_in(["head", "dist"], {"scope": "all", "jurisdictions": []}), "BAD_SCHEMA",
     "head.dist.jurisdictions", "at least 1 entry"),
    ("add", set_in(["head", "dist"], {"scope": "all", "jurisdictions": ["ie"]}), "BAD_SCHEMA",
     "head.dist.jurisdictions[0]", "invalid jurisdiction code"),
    ("add", set_in(["head", "dist"], {"scope": "all", "jurisdictions": ["IE", "IE"]}),
     "BAD_SCHEMA", "head.dist.jurisdictions[1]", "duplicate jurisdiction 'IE'"),
    ("add", set_in(["head", "dist"], {"scope": "group", "group": "Bad Name"}), "BAD_SCHEMA",
     "head.dist.group", "invalid group id"),
    ("add", set_in(["body", "items"], []), "BAD_SCHEMA", "body.items", "at least 1 entry"),
    ("add", lambda v: v["body"]["items"].extend([item(v)] * 256), "BAD_SCHEMA", "body.items",
     "at most 256 entries allowed, got 257"),
    ("add", set_in(I0 + ["hashes"], []), "BAD_SCHEMA", "body.items[0].hashes",
     "at least 1 entry"),
    ("add", lambda v: item(v)["hashes"].extend(
        {"type": t, "value": HASH_TYPES[t].examples()[0]} for t in sorted(HASH_TYPES)),
     "BAD_SCHEMA", "body.items[0].hashes", "at most 8 entries allowed, got 9"),
    ("add", set_in(I0 + ["labels"], [f"l{i}" for i in range(17)]), "BAD_SCHEMA",
     "body.items[0].labels", "at most 16 entries allowed, got 17"),
    ("add", set_in(I0 + ["labels"], ["a", "a"]), "BAD_SCHEMA", "body.items[0].labels[1]",
     "duplicate label 'a'"),
    ("add", set_in(I0 + ["labels"], ["Intimate"]), "BAD_SCHEMA", "body.items[0].labels[0]",
     "invalid label 'Intimate'"),
    ("add", set_in(I0 + ["labels"], None), "BAD_SCHEMA", "body.items[0].labels",
     "expected an array, got null"),
    ("add", set_in(I0 + ["list"], "ncii/x"), "BAD_SCHEMA", "body.items[0].list",
     "invalid list name"),
    ("add", delete(I0 + ["tier"]), "BAD_SCHEMA", "body.items[0].tier", "missing required"),
    ("add", set_in(I0 + ["expires"], -5), "BAD_SCHEMA", "body.items[0].expires", "between 0"),
    ("add", set_in(H + ["value"], PDQ[0][:63]), "BAD_HASH_VALUE", "body.items[0].hashes[0].value",
     "invalid pdq hash (expected 64 hex characters, got 63)"),
    ("add", set_in(H + ["value"], 5), "BAD_HASH_VALUE", "body.items[0].hashes[0].value",
     "expected a string of 64 hex characters, got int"),
    ("add", set_in(H + ["type"], "PDQ"), "UNKNOWN_HASH_TYPE", "body.items[0].hashes[0].type",
     "unknown hash type 'PDQ'"),
    ("add", set_in(H, {"type": "photodna", "value": "AAE"}), "BAD_HASH_VALUE",
     "body.items[0].hashes[0].value", "expected padded base64"),
    ("add", set_in(H, {"type": "phash", "value": "C2924C5532BDDFC8"}), "BAD_SCHEMA",
     "body.items[0].hashes[0].value", "must be in normal form ('c2924c5532bddfc8')"),
    ("add", set_in(H + ["quality"], None), "BAD_SCHEMA", "body.items[0].hashes[0].quality",
     "expected an integer, got null"),
    ("add", set_in(["body"], {"targets": [], "reason": "withdrawn"}), "UNKNOWN_FIELD",
     "body.reason", "unknown field 'reason'"),
    ("add", set_in(["sig"], "AAAA"), "BAD_SCHEMA", "sig", "must be 64 bytes, got 3"),
    ("add", set_in(["sig"], None), "BAD_SCHEMA", "sig", "expected a base64url string"),
    ("add", delete(["head"]), "BAD_SCHEMA", "head", "missing required field"),
    ("add", set_in(["head", "extra"], 1), "UNKNOWN_FIELD", "head.extra", "unknown field"),
    ("revoke", set_in(["body", "targets"], []), "BAD_SCHEMA", "body.targets", "at least 1"),
    ("revoke", set_in(["body", "targets"], [{"record": RECORD_ID}] * 2), "BAD_SCHEMA",
     "body.targets[1]", "duplicate target"),
    ("revoke", set_in(["body", "targets"], [{"record": RECORD_ID[:-1]}]), "BAD_SCHEMA",
     "body.targets[0].record", "invalid record id"),
    ("revoke", set_in(["body", "targets"], [{"record": RECORD_ID, "item": 256}]), "BAD_SCHEMA",
     "body.targets[0].item", "between 0 and 255"),
    ("revoke", set_in(["body", "targets"], [{"record": f"{i:064x}"} for i in range(257)]),
     "BAD_SCHEMA", "body.targets", "at most 256"),
    ("revoke", set_in(["body", "reason"], "changed_mind"), "UNKNOWN_TYPE", "body.reason",
     "unknown value 'changed_mind'"),
    ("feedback", set_in(["body", "verdict"], "fake"), "UNKNOWN_TYPE", "body.verdict",
     "expected one of: actioned, confirmed, disputed, not_ncii"),
    ("feedback", set_in(["body", "note"], "x" * 281), "BAD_SCHEMA", "body.note",
     "at most 280 characters allowed, got 281"),
    ("feedback", set_in(["body", "target"], RECORD_ID), "BAD_SCHEMA", "body.target",
     "expected an object, got string"),
    ("key", set_in(["body", "signing_key"], "ed25519:xyz"), "BAD_KEY", "body.signing_key",
     "must be 32 bytes"),
    ("key", set_in(["body", "signing_key"], ORIGIN), "BAD_SCHEMA", "body.signing_key",
     "the root key cannot be authorised"),
    ("key_revoke", set_in(["body", "signing_key"], ORIGIN), "BAD_SCHEMA", "body.signing_key",
     "the root key cannot be revoked"),
    ("key", set_in(["head", "key"], SIGNER.id), "BAD_SCHEMA", "head.key",
     "key records must be signed by the root key"),
    ("key_revoke", set_in(["head", "dist"], {"scope": "all", "jurisdictions": ["IE"]}),
     "BAD_SCHEMA", "head.dist", "key_revoke records must have scope 'all'"),
]


@pytest.mark.parametrize(("record_type", "edit", "code", "path", "fragment"), REJECTIONS,
                         ids=[f"{r[0]}:{r[3]}:{r[2]}" for r in REJECTIONS])
def test_parse_rejects_invalid_field_with_located_error(
        record_type: str, edit: Callable[[dict[str, Any]], object], code: str, path: str,
        fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_edited(edit, record_type)
    assert (info.value.code, info.value.path) == (code, f"record.{path}")
    assert fragment in info.value.reason


def test_bad_hash_value_message_names_the_field_and_the_fault() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_edited(set_in(H + ["value"], PDQ[0][:63]))
    assert str(info.value) == ("record.body.items[0].hashes[0].value: invalid pdq hash "
                               "(expected 64 hex characters, got 63)")


@pytest.mark.parametrize("record_type", sorted(BODY_CLASSES))
def test_every_record_type_parses_and_reencodes_to_the_same_bytes(record_type: str) -> None:
    value = envelope(record_type)
    data = canonical.encode(value)
    record = SignedRecord.from_bytes(data)
    assert record.raw == data
    assert record.to_json() == value
    assert type(record.body).from_json(value["body"], "body") == record.body


def test_version_is_checked_before_unknown_fields() -> None:
    def future(value: dict[str, Any]) -> None:
        value["head"].update(v=3, epoch=1)
        value["signatures"] = []
    with pytest.raises(ProtocolError) as info:
        parse_edited(future)
    assert (info.value.code, info.value.path) == ("UNKNOWN_TYPE", "record.head.v")


def test_head_alone_reports_another_version_before_its_unknown_fields() -> None:
    head = dict(envelope()["head"], v=3, epoch=1)
    with pytest.raises(ProtocolError) as info:
        Head.from_json(head, "head")
    assert (info.value.code, info.value.path) == ("UNKNOWN_TYPE", "head.v")


def test_optional_fields_are_absent_when_unset_never_null() -> None:
    record = signed_add(add_body(PDQ[0]))
    assert record.to_json()["body"]["items"][0] == {
        "hashes": [{"type": "pdq", "value": PDQ[0]}], "list": "ncii", "tier": "victim_submitted"}
    assert record.head.to_json()["dist"] == {"scope": "all"}


def test_from_json_rejects_a_body_that_does_not_match_the_digest() -> None:
    value = envelope()
    item(value)["list"] = "other"
    with pytest.raises(ProtocolError) as info:
        SignedRecord.from_json(value)
    assert (info.value.code, info.value.path) == ("BODY_DIGEST_MISMATCH", "record.body")


def test_head_commits_to_the_body_digest() -> None:
    record = signed_add()
    assert record.body is not None
    assert record.head.digest == body_digest(record.body)
    assert record.head.digest == generate_vectors.sha_body(record.to_json()["body"])


def test_stub_keeps_id_and_signature_and_drops_the_body() -> None:
    record = signed_add(dist=Distribution("peers"))
    stub = record.stub()
    assert stub.is_stub and not record.is_stub
    assert (stub.id, stub.sig, stub.head) == (record.id, record.sig, record.head)
    assert "body" not in json.loads(stub.raw)
    assert SignedRecord.from_bytes(stub.raw) == stub
    assert stub.stub() is stub


def test_record_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_not() -> None:
    head = generate_vectors.head_json("add", 2, PREV)
    at_limit = generate_vectors.sized_add(MAX_RECORD_BYTES, SIGNER, head)
    assert SignedRecord.from_bytes(at_limit).raw == at_limit
    over = generate_vectors.sized_add(MAX_RECORD_BYTES + 1, SIGNER, head)
    with pytest.raises(OversizeError, match="65537 bytes exceeds the record limit of 65536"):
        SignedRecord.from_bytes(over)


def test_signing_refuses_to_build_an_oversize_record() -> None:
    photodna = HASH_TYPES["photodna"].examples()[0]
    items = [{"hashes": [{"type": "photodna", "value": photodna}], "list": "ncii",
              "tier": "victim_submitted", "labels": [f"n{i}"]} for i in range(256)]
    with pytest.raises(OversizeError):
        signed_add(AddBody.from_json({"items": items, "salt": SALT}, "body"))


def test_batch_of_256_pdq_items_fits_the_size_limit() -> None:
    values = [f"{i:064x}" for i in range(256)]
    items = [{"hashes": [{"type": "pdq", "value": v, "quality": 100}], "labels": ["intimate"],
              "list": "ncii", "tier": "helpline_verified", "expires": T0} for v in values]
    record = signed_add(AddBody.from_json({"items": items, "salt": SALT}, "body"))
    assert len(record.raw) < MAX_RECORD_BYTES


@pytest.mark.parametrize(("ref", "expected"), [
    (RECORD_ID, Target(RECORD_ID)),
    (f"{RECORD_ID}/0", Target(RECORD_ID, 0)),
    (f"{RECORD_ID}/255", Target(RECORD_ID, 255)),
])
def test_item_refs_parse_and_print_the_same(ref: str, expected: Target) -> None:
    assert Target.parse_ref(ref, "ref") == expected
    assert expected.ref == ref


@pytest.mark.parametrize("ref", [
    RECORD_ID[:-1], RECORD_ID.upper(), f"{RECORD_ID}/", f"{RECORD_ID}/01", f"{RECORD_ID}/256",
    f"{RECORD_ID}/-1", f"{RECORD_ID}/1/2", f"{RECORD_ID}/\u0663", f"{RECORD_ID}/+1",
])
def test_item_refs_reject_every_other_form(ref: str) -> None:
    with pytest.raises(SchemaError) as info:
        Target.parse_ref(ref, "query.ref")
    assert info.value.path == "query.ref"


def test_distribution_round_trips_and_defaults_to_everyone() -> None:
    dist = Distribution("group", GROUP_ID, ("IE", "NL"))
    assert Distribution.from_json(dist.to_json(), "dist") == dist
    named = Distribution("group", "eu-helplines")  # v1 groups were readable names
    assert Distribution.from_json(named.to_json(), "dist", version=1) == named
    assert Distribution().to_json() == {"scope": "all"}


def test_key_and_withdrawal_records_are_never_stubbed_by_an_honest_policy() -> None:
    from tests.protocol.builders import Chain, add_body, key_body, key_revoke_body, revoke_body

    chain = Chain()
    grant = chain.add(key_body(SIGNER))
    added = chain.add(add_body(), SIGNER, dist=Distribution("group", GROUP_ID))
    withdrawal = chain.add(revoke_body(added.id), SIGNER)
    key_revoke = chain.add(key_revoke_body(SIGNER))
    assert [never_stubbed(r.head) for r in chain.records] == [True, False, True, True]
    assert never_stubbed(grant.stub().head) and never_stubbed(key_revoke.stub().head)
    assert never_stubbed(withdrawal.stub().head)


def test_stub_refusal_is_the_one_rule_and_names_the_reason() -> None:
    """SPEC §9: besides key records, every non-add record of scope all without
    jurisdictions travels whole; an add, or a record restricted by group or jurisdiction, may
    be a stub (the node refuses stubs by exactly this rule, ``node/federation/pages.py``)."""
    from tests.protocol.builders import Chain, add_body, feedback_body

    chain = Chain()
    added = chain.add(add_body())
    public = chain.add(feedback_body(added.id))
    scoped = chain.add(feedback_body(added.id, "disputed"),
                       dist=Distribution("all", jurisdictions=("IE",)))
    assert stub_refusal(public.head) == ("a feedback record of scope 'all' without "
                                         "jurisdictions is never withheld by policy")
    assert stub_refusal(added.head) is None and stub_refusal(scoped.head) is None
