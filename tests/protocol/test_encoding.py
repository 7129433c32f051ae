"""The template encoder of ``add`` bodies and heads writes exactly the canonical bytes.

``protocol/encoding.py`` builds the bytes a bulk add signs without the generic canonicaliser,
and ``sign_record`` then skips the strict round trip. These tests hold it to:

* byte equality with ``canonical.encode`` (the reference, itself held to ``rfc8785``) on
  generated bodies and heads of every shape the protocol allows;
* records that ``SignedRecord.from_bytes`` reads back equal, with the same id;
* declining (``None``) whatever the strict schema refuses, so that the generic path reports it;
* the committed vectors: re-signing their add records gives their bytes.
"""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol import canonical, encoding, records
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.records import (
    AddBody,
    Distribution,
    HashEntry,
    Head,
    Item,
    SignedRecord,
)
from hashmesh.protocol.signing import _sign_add_fast, sign_record, signature_verifies
from tests.protocol.builders import PROPERTY, ROOT, SIGNER
from tests.protocol.test_fastpath import VECTORS, distributions, items, record_ids, salts

add_bodies = st.builds(lambda xs, s: AddBody(tuple(xs), s),
                       st.lists(items(), min_size=1, max_size=6), salts)


@PROPERTY
@given(add_bodies)
def test_add_body_bytes_equal_the_reference_canonicaliser(body: AddBody) -> None:
    assert encoding.add_body_bytes(body) == canonical.encode(body.to_json())


@PROPERTY
@given(items())
def test_item_text_equals_the_reference_canonicaliser(item: Item) -> None:
    text = encoding.item_text(item)
    assert text is not None
    assert text.encode() == canonical.encode(item.to_json())
    single = dataclasses.replace(item, hashes=item.hashes[:1], labels=(), expires=None)
    size = encoding.item_size(single)
    assert size is None or size == len(canonical.encode(single.to_json()))
    if single.hashes[0].type == "pdq" and single.hashes[0].quality is None:
        assert size is not None


@PROPERTY
@given(st.lists(items(), min_size=1, max_size=4))
def test_items_read_from_canonical_text_keep_exactly_the_text_the_encoder_writes(
        items_: list[Item]) -> None:
    texts = [canonical.encode(item.to_json()).decode() for item in items_]
    read = records.read_canonical_items(",".join(texts))
    assert read is not None and list(read) == items_
    for item, text, original in zip(read, texts, items_, strict=True):
        assert records.canonical_text(item) == text
        assert records.canonical_text(original) is None
        assert encoding.item_text(item) == encoding.item_text(original) == text
        assert encoding.item_size(item) == len(text.encode())
        changed = dataclasses.replace(item, list="other")
        assert records.canonical_text(changed) is None
        assert encoding.item_text(changed) == canonical.encode(changed.to_json()).decode()


@PROPERTY
@given(add_bodies, distributions(2), st.integers(1, 2**53 - 1), record_ids,
       st.integers(0, 2**53 - 1), st.booleans())
def test_fast_signed_adds_equal_the_strict_round_trip(
        body: AddBody, dist: Distribution, seq: int, prev: str, ts: int, root: bool) -> None:
    signer = ROOT if root else SIGNER
    prev_or_none = None if seq == 1 else prev
    fast = _sign_add_fast(signer=signer, origin=ROOT.id, seq=seq, prev=prev_or_none, ts=ts,
                          body=body, dist=dist)
    assert fast is not None
    strict = SignedRecord.from_bytes_located(fast.raw)
    assert strict == fast and strict.id == fast.id
    assert fast.head_bytes == canonical.encode(fast.head.to_json())
    assert fast.raw == canonical.encode(strict.to_json())


PDQ = "0" * 63 + "1"


def _bad_items() -> list[Item]:
    good = Item((HashEntry("pdq", PDQ),), "ncii")
    return [
        dataclasses.replace(good, hashes=(HashEntry("pdq", PDQ.upper()[:-1] + "A"),)),
        dataclasses.replace(good, hashes=(HashEntry("pdq", PDQ[:-1]),)),
        dataclasses.replace(good, hashes=(HashEntry("pdq", PDQ, 101),)),
        dataclasses.replace(good, hashes=(HashEntry("md5", "0" * 32, 5),)),
        dataclasses.replace(good, hashes=(HashEntry("nope", "0" * 32),)),
        dataclasses.replace(good, hashes=(HashEntry("pdq", PDQ), HashEntry("pdq", PDQ))),
        dataclasses.replace(good, hashes=()),
        dataclasses.replace(good, list="Has Space"),
        dataclasses.replace(good, list='a"b'),
        dataclasses.replace(good, tier="unknown"),
        dataclasses.replace(good, labels=("ok", "ok")),
        dataclasses.replace(good, labels=("bad\n",)),
        dataclasses.replace(good, labels=("é",)),
        dataclasses.replace(good, expires=-1),
        dataclasses.replace(good, expires=2**53),
    ]


def test_what_the_schema_refuses_is_declined_and_the_generic_path_reports_it() -> None:
    for bad in _bad_items():
        body = AddBody((bad,), "A" * 22)
        assert encoding.add_body_bytes(body) is None, bad
        try:
            record = sign_record(signer=SIGNER, origin=ROOT.id, seq=1, prev=None, ts=1,
                                 body=body)
        except (ProtocolError, ValueError, TypeError):
            continue
        raise AssertionError(f"signed an invalid item: {record.raw!r}")
    assert encoding.add_body_bytes(AddBody((Item((HashEntry("pdq", PDQ),), "ncii"),),
                                           "bad salt")) is None


def test_invalid_heads_are_declined() -> None:
    head = Head(type="add", origin=ROOT.id, seq=2, prev="a" * 64, key=SIGNER.id, ts=5,
                dist=Distribution(), digest="b" * 64)
    assert encoding.head_bytes(head) == canonical.encode(head.to_json())
    for bad in (dataclasses.replace(head, prev=None), dataclasses.replace(head, seq=1),
                dataclasses.replace(head, seq=0), dataclasses.replace(head, ts=-1),
                dataclasses.replace(head, digest="B" * 64),
                dataclasses.replace(head, key="ed25519:short"),
                dataclasses.replace(head, type="bogus"),
                dataclasses.replace(head, dist=Distribution("group")),
                dataclasses.replace(head, dist=Distribution("all", "c" * 32)),
                dataclasses.replace(head, dist=Distribution("all", None, ("DE", "DE")))):
        assert encoding.head_bytes(bad) is None, bad


def test_the_add_records_of_the_vectors_re_sign_to_their_bytes() -> None:
    """Ed25519 is deterministic: the fast path re-signing a vector's v2 add gives its bytes."""
    found = 0
    for path in sorted(VECTORS.glob("*.json")):
        for text in _strings(json.loads(path.read_text(encoding="utf-8"))):
            try:
                record = SignedRecord.from_bytes(text.encode())
            except ProtocolError:
                continue
            if not isinstance(record.body, AddBody) or record.head.v != 2 \
                    or not signature_verifies(record):
                continue
            signer = next((k for k in (ROOT, SIGNER) if k.id == record.head.key), None)
            if signer is None:
                continue
            again = _sign_add_fast(signer=signer, origin=record.head.origin,
                                   seq=record.head.seq, prev=record.head.prev,
                                   ts=record.head.ts, body=record.body, dist=record.head.dist)
            assert again is not None and again.raw == record.raw
            found += 1
    assert found >= 1


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith('{"body":{"items"') else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
