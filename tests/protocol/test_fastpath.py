"""The fast parse path accepts exactly what the located path accepts, with an equal result.

``SignedRecord.from_bytes`` first tries ``_from_bytes_fast`` (regular expressions over the
canonical bytes) and falls back to ``from_bytes_located`` (strict parse, located schema,
re-encoding) for anything the fast path does not take. These tests hold the fast path to never
accept what the located path refuses, never to differ from it, and to take every valid record
whose bytes are ASCII (all but feedback notes with non-ASCII text), so that syncs never pay for
the located path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import hashmesh.protocol
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.records import (
    GROUP_ID_PATTERN,
    SALT_PATTERN,
    VERSIONS,
    AddBody,
    Body,
    Distribution,
    FeedbackBody,
    HashEntry,
    Item,
    KeyBody,
    KeyRevokeBody,
    RevokeBody,
    SignedRecord,
    Target,
    _from_bytes_fast,
    public_types,
)
from hashmesh.protocol.signing import sign_record
from tests.protocol.builders import PROPERTY, ROOT, SIGNER, T0

VECTORS = Path(hashmesh.protocol.__file__).parent / "vectors"


def located(data: bytes) -> SignedRecord | ProtocolError:
    try:
        return SignedRecord.from_bytes_located(data)
    except ProtocolError as exc:
        return exc


def assert_agrees(data: bytes) -> SignedRecord | None:
    """The fast path either declines or returns exactly what the located path returns."""
    fast = _from_bytes_fast(data)
    if fast is not None:
        slow = located(data)
        assert not isinstance(slow, ProtocolError), f"fast path accepted what {slow} refuses"
        assert fast == slow
        assert fast.id == slow.id
    return fast


# -- strategies: valid records of every type and shape ------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,10}", fullmatch=True)
labels = st.from_regex(r"[a-z0-9][a-z0-9_.:-]{0,10}", fullmatch=True)
safe_ints = st.integers(min_value=0, max_value=2**53 - 1)


@st.composite
def hash_entries(draw: st.DrawFn, type_name: str) -> HashEntry:
    if type_name == "photodna":
        value = draw(st.sampled_from(HASH_TYPES["photodna"].examples()))
    elif type_name in ("md5",):
        value = draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
    elif type_name in ("pdq", "sha256"):
        value = draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
    else:
        value = draw(st.from_regex(r"[0-9a-f]{16}", fullmatch=True))
    quality = draw(st.none() | st.integers(0, 100)) if type_name == "pdq" else None
    return HashEntry(type_name, value, quality)


@st.composite
def items(draw: st.DrawFn) -> Item:
    types = draw(st.lists(st.sampled_from(sorted(HASH_TYPES)), min_size=1, max_size=8,
                          unique=True))
    return Item(
        hashes=tuple(draw(hash_entries(t)) for t in types),
        list=draw(names),
        labels=tuple(draw(st.lists(labels, max_size=16, unique=True))),
        tier=draw(st.sampled_from(["victim_submitted", "helpline_verified",
                                   "platform_confirmed"])),
        expires=draw(st.none() | safe_ints),
    )


record_ids = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
targets = st.builds(Target, record_ids, st.none() | st.integers(0, 255))
salts = st.from_regex(SALT_PATTERN, fullmatch=True)
SALT = "AAAAAAAAAAAAAAAAAAAAAA"  # 16 zero bytes
group_ids = st.from_regex(GROUP_ID_PATTERN, fullmatch=True)


@st.composite
def bodies(draw: st.DrawFn, version: int, seq: int) -> Body:
    """A valid body of ``version`` for a record at ``seq`` (v2: salts and ``last_seq``)."""
    salt = draw(salts) if version >= 2 else None
    return draw(st.one_of(
        st.builds(lambda xs: AddBody(tuple(xs), salt), st.lists(items(), min_size=1,
                                                                 max_size=4)),
        st.builds(lambda ts, r: RevokeBody(tuple({t.ref: t for t in ts}.values()), r),
                  st.lists(targets, min_size=1, max_size=3),
                  st.sampled_from(["withdrawn", "erroneous", "expired", "legal_order",
                                   "other"])),
        st.builds(lambda t, v, n: FeedbackBody(t, v, n, salt), targets,
                  st.sampled_from(["confirmed", "not_ncii", "disputed"]),
                  st.none() | st.text(max_size=20)),
        st.just(KeyBody(SIGNER.id)),
        st.builds(lambda last: KeyRevokeBody(SIGNER.id, last if version >= 2 else None),
                  st.integers(0, seq - 1)),
    ))


def distributions(version: int) -> st.SearchStrategy[Distribution]:
    groups = group_ids if version >= 2 else names
    return st.one_of(
        st.just(Distribution()),
        st.builds(lambda g: Distribution("group", g), groups),
        st.just(Distribution("peers")),
        st.builds(lambda s, g, js: Distribution(s, g if s == "group" else None, tuple(js)),
                  st.sampled_from(["all", "group", "peers"]), groups,
                  st.lists(st.from_regex(r"[A-Z]{2}", fullmatch=True), min_size=1,
                           max_size=3, unique=True)),
    )


@st.composite
def records(draw: st.DrawFn) -> SignedRecord:
    version = draw(st.sampled_from(sorted(VERSIONS)))
    seq = draw(st.integers(1, 2**53 - 1))
    body = draw(bodies(version, seq))
    root_only = isinstance(body, KeyBody | KeyRevokeBody)
    scope_all = root_only or body.TYPE in public_types(version)
    record = sign_record(
        signer=ROOT if root_only or draw(st.booleans()) else SIGNER, origin=ROOT.id, seq=seq,
        prev=None if seq == 1 else draw(record_ids), ts=draw(safe_ints), body=body,
        dist=Distribution() if scope_all else draw(distributions(version)), version=version)
    return record.stub() if draw(st.booleans()) else record


# -- valid records ----------------------------------------------------------------------------

@PROPERTY
@given(records())
def test_fast_path_reads_every_valid_ascii_record_as_the_located_path_does(
        record: SignedRecord) -> None:
    fast = assert_agrees(record.raw)
    if record.raw.isascii():
        assert fast == record
    else:
        assert fast is None


def vector_records() -> Iterator[bytes]:
    """Every record (valid or not) in the committed vectors."""

    def walk(value: Any) -> Iterator[bytes]:
        if isinstance(value, str) and value.startswith(('{"body":', '{"head":')):
            yield value.encode("utf-8")
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "record_hex":
                    yield bytes.fromhex(item)
                else:
                    yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    for path in sorted(VECTORS.glob("*.json")):
        yield from walk(json.loads(path.read_text(encoding="utf-8")))


def test_fast_path_agrees_on_every_record_of_the_vectors() -> None:
    seen = list(vector_records())
    assert len(seen) > 50
    for data in seen:
        assert_agrees(data)


def test_fast_path_declines_every_invalid_vector() -> None:
    invalid = json.loads((VECTORS / "invalid.json").read_text(encoding="utf-8"))
    for vector in invalid["records"]:
        data = (bytes.fromhex(vector["record_hex"]) if "record_hex" in vector
                else vector["record"].encode("utf-8"))
        if isinstance(located(data), ProtocolError):
            assert _from_bytes_fast(data) is None, vector["name"]


# -- mutated records --------------------------------------------------------------------------

def splice_body(record: SignedRecord, body: bytes) -> bytes:
    """The envelope with ``body`` in place of the record's body and a head digest to match,
    so that the mutation reaches the schema instead of failing the digest check."""
    head = json.loads(record.head_bytes)
    head["digest"] = hashlib.sha256(body).hexdigest()
    head_bytes = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
    sig = record.raw.rsplit(b',"sig":', 1)[1]
    return b'{"body":' + body + b',"head":' + head_bytes + b',"sig":' + sig


MUTANTS = [b"", b" ", b",", b'"', b"\\", b"0", b"-", b"1.5", b"1e3", b"A", b"{}", b"[]",
           b"null", b'"x"', b"\xc3\xa9", b"\\u0061", b"\\/", b"9007199254740993", b"-0",
           b'"v":1', b'"type":"pdq"', b"}", b"]", b":", b"\n", b"true"]


@PROPERTY
@given(records(), st.data())
@example(SignedRecord.from_bytes(sign_record(
    signer=ROOT, origin=ROOT.id, seq=1, prev=None, ts=T0,
    body=AddBody((Item((HashEntry("pdq", "0" * 64),), "ncii"),))).raw), None)
def test_fast_path_never_accepts_a_mutation_the_located_path_refuses(
        record: SignedRecord, data: st.DataObject | None) -> None:
    raw = record.raw
    if data is None:  # the explicit example: a few fixed edits
        edits = [(raw.index(b'"value"'), 1, b"V"), (10, 0, b" "), (len(raw) - 2, 0, b",")]
    else:
        # half of the edits land just after a ':', ',', '[' or '{', where values start
        starts = sorted({i + 1 for i, byte in enumerate(raw) if byte in b":,[{"})
        positions = st.sampled_from(starts) | st.integers(0, len(raw))
        edits = data.draw(st.lists(st.tuples(positions, st.integers(0, 3),
                                             st.sampled_from(MUTANTS)), min_size=1, max_size=3))
    for at, cut, insert in edits:
        mutated = raw[:at] + insert + raw[at + cut:]
        assert_agrees(mutated)
        if record.body is not None and record.raw.startswith(b'{"body":'):
            body = raw[8:raw.index(b',"head":')]
            at_body = min(at, len(body))
            assert_agrees(splice_body(record, body[:at_body] + insert + body[at_body + cut:]))


@pytest.mark.parametrize("field, value", [
    ("labels", ["a", "a"]), ("labels", []), ("hashes", []), ("expires", 2**53),
    ("expires", -1), ("list", "Ncii"), ("tier", "other"), ("extra", 1), ("labels", None),
])
def test_fast_path_declines_items_the_schema_refuses(field: str, value: Any) -> None:
    record = sign_record(signer=ROOT, origin=ROOT.id, seq=1, prev=None, ts=T0,
                         body=AddBody((Item((HashEntry("pdq", "0" * 64, 7),), "ncii"),)))
    item = {"hashes": [{"quality": 7, "type": "pdq", "value": "0" * 64}], "list": "ncii",
            "tier": "victim_submitted", field: value}
    body = json.dumps({"items": [item], "salt": SALT}, sort_keys=True,
                      separators=(",", ":")).encode()
    mutated = splice_body(record, body)
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None


@pytest.mark.parametrize("entry", [
    {"type": "pdq", "value": "0" * 64, "quality": 101},
    {"type": "md5", "value": "0" * 32, "quality": 1},
    {"type": "pdq", "value": "A" * 64},
    {"type": "pdq", "value": "0" * 63},
    {"type": "nope", "value": "0" * 64},
])
def test_fast_path_declines_hashes_the_schema_refuses(entry: dict[str, Any]) -> None:
    record = sign_record(signer=ROOT, origin=ROOT.id, seq=1, prev=None, ts=T0,
                         body=AddBody((Item((HashEntry("pdq", "0" * 64),), "ncii"),)))
    item = {"hashes": [{"type": "sha256", "value": "1" * 64}, entry], "list": "ncii",
            "tier": "victim_submitted"}
    body = json.dumps({"items": [item], "salt": SALT}, sort_keys=True,
                      separators=(",", ":")).encode()
    mutated = splice_body(record, body)
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None


@pytest.mark.parametrize("key", [b'"seq":', b'"ts":', b'"quality":', b'"expires":'])
@pytest.mark.parametrize("prefix", [b"0", b"-", b"+", b" "])
def test_fast_path_declines_integers_not_in_canonical_form(key: bytes, prefix: bytes) -> None:
    record = sign_record(signer=ROOT, origin=ROOT.id, seq=2, prev="ab" * 32, ts=T0,
                         body=AddBody((Item((HashEntry("pdq", "0" * 64, 7),), "ncii",
                                            expires=T0),)))
    at = record.raw.index(key) + len(key)
    if key in (b'"seq":', b'"ts":'):
        mutated = record.raw[:at] + prefix + record.raw[at:]
    else:
        body = record.raw[8:record.raw.index(b',"head":')]
        at = body.index(key) + len(key)
        mutated = splice_body(record, body[:at] + prefix + body[at:])
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None


def with_head(record: SignedRecord, **fields: Any) -> bytes:
    """The envelope with head fields replaced (the signature no longer matters here)."""
    head = {**json.loads(record.head_bytes), **fields}
    head_bytes = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
    start = record.raw.index(b'"head":') + 7
    return record.raw[:start] + head_bytes + record.raw[start + len(record.head_bytes):]


@pytest.mark.parametrize("fields", [
    {"dist": {"scope": "all", "jurisdictions": ["FR", "FR"]}},
    {"dist": {"scope": "all",
              "jurisdictions": [f"{a}{b}" for a in "AB" for b in "ABCDEFGHIJKLMNOPQ"]}},
    {"dist": {"scope": "all", "jurisdictions": ["fr"]}},
    {"dist": {"scope": "all", "group": "g"}},
    {"dist": {"scope": "peers", "group": "g"}},
    {"dist": {"scope": "group"}},
    {"dist": {"scope": "everyone"}},
    {"prev": None},
    {"seq": 1},
    {"seq": 0},
    {"ts": 2**53},
    {"v": 3},
    {"v": 1},  # a v1 head over a salted body
    {"dist": {"scope": "group", "group": "eu-helplines"}},  # a v1 group name in v2
    {"type": "revoke"},
    {"type": "key"},
    {"key": "ed25519:" + "A" * 42 + "B"},
    {"origin": "ed25519:" + "A" * 42 + "B"},
])
def test_fast_path_declines_heads_the_schema_refuses(fields: dict[str, Any]) -> None:
    record = sign_record(signer=SIGNER, origin=ROOT.id, seq=2, prev="ab" * 32, ts=T0,
                         body=AddBody((Item((HashEntry("pdq", "0" * 64),), "ncii"),)))
    mutated = with_head(record, **fields)
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None


def full_add(count: int) -> SignedRecord:
    items = tuple(Item((HashEntry("pdq", f"{i:064x}"),), "ncii") for i in range(count))
    return sign_record(signer=ROOT, origin=ROOT.id, seq=1, prev=None, ts=T0,
                       body=AddBody(items[:256]))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fault", [b'"tier":"nope"', b'"list":"Ncii"', b'"list":"ncii",x'])
def test_fast_path_declines_a_fault_in_the_last_of_256_items_without_backtracking(
        fault: bytes) -> None:
    """Every part of the item grammar matches a given text one way only; otherwise a fault at
    the end of a full body would make the regular expressions try exponentially many ways."""
    record = full_add(256)
    body = record.raw[8:record.raw.index(b',"head":')]
    at = body.rindex(b'"list":"ncii"')
    mutated = splice_body(record, body[:at] + fault + body[at + len(b'"list":"ncii"'):])
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None


def test_fast_path_declines_more_than_256_items() -> None:
    record = full_add(256)
    body = record.raw[8:record.raw.index(b',"head":')]
    extra = b',{"hashes":[{"type":"pdq","value":"' + b"f" * 64 + b'"}],"list":"ncii",' \
            b'"tier":"victim_submitted"}]}'
    end = body.index(b'],"salt":')
    mutated = splice_body(record, body[:end] + extra[:-2] + body[end:])
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None
    assert _from_bytes_fast(record.raw) == record


@pytest.mark.parametrize("edit", ["last_bits", "padding", "plus", "short"])
def test_fast_path_declines_signatures_not_in_canonical_base64url(edit: str) -> None:
    record = full_add(1)
    sig = record.raw[-88:-2].decode()
    bad = {"last_bits": sig[:-1] + chr(ord(sig[-1]) + 1), "padding": sig + "==",
           "plus": "+" + sig[1:], "short": sig[:-1]}[edit]
    mutated = record.raw[:-88] + bad.encode() + b'"}'
    assert isinstance(located(mutated), ProtocolError)
    assert _from_bytes_fast(mutated) is None
