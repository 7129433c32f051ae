"""The fast reader of add requests gives what the strict parse gives, or declines.

``read_add_fast`` reads the canonical-form bodies that ``hashmesh add --from`` writes; every
other body, and every fault, must go to ``parse_add``, which reports it by field.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hashmesh.node.api.requests import parse_add, read_add_fast
from hashmesh.node.cli.bulk import _batches, _envelope_bytes, encode_request, item_affixes
from hashmesh.node.cli.hashlists import ListEntry
from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.records import Distribution, Item
from tests.protocol.builders import PROPERTY
from tests.protocol.test_fastpath import distributions, items


def strict(body: bytes, max_batch: int, allowed: tuple[str, ...]) -> object:
    try:
        return parse_add(canonical.parse(body), max_batch=max_batch, default_list="ncii",
                         allowed_lists=allowed)
    except ProtocolError as exc:
        return exc


def request_bytes(items_: list[Item], dist: object | None) -> bytes:
    body: dict[str, object] = {"items": [i.to_json() for i in items_]}
    if dist is not None:
        body["dist"] = dist
    return canonical.encode(body)


@PROPERTY
@given(st.lists(items(), min_size=1, max_size=5), st.none() | distributions(2),
       st.integers(1, 6))
def test_fast_reader_equals_the_strict_parse_on_canonical_requests(
        items_: list[Item], dist: Distribution | None, max_batch: int) -> None:
    body = request_bytes(items_, None if dist is None else dist.to_json())
    allowed = tuple(sorted({i.list for i in items_}))
    fast = read_add_fast(body, max_batch=max_batch, allowed_lists=allowed)
    slow = strict(body, max_batch, allowed)
    if len(items_) > max_batch:
        assert fast is None and isinstance(slow, ProtocolError)
    else:
        assert fast is not None and fast == slow


@PROPERTY
@given(st.lists(items(), min_size=1, max_size=3), st.integers(0, 10_000), st.data())
def test_fast_reader_never_accepts_what_the_strict_parse_refuses_or_reads_otherwise(
        items_: list[Item], position: int, data: st.DataObject) -> None:
    body = bytearray(request_bytes(items_, {"scope": "all"}))
    at = position % len(body)
    change = data.draw(st.sampled_from([b"", b"A", b'"', b",", b"]", b"}", b"0", b"\\",
                                        b" ", b'"x":1,']))
    mutated = bytes(body[:at] + change + body[at + 1:])
    allowed = tuple(sorted({i.list for i in items_}))
    fast = read_add_fast(mutated, max_batch=10, allowed_lists=allowed)
    if fast is not None:
        assert fast == strict(mutated, 10, allowed)


def test_a_list_not_allowed_goes_to_the_strict_parse_which_names_it() -> None:
    prefix, suffix = item_affixes({"tier": "victim_submitted", "list": "other"}, "ncii")
    body = encode_request([ListEntry("pdq", "ab" * 32, "")], prefix, suffix, {"scope": "all"})
    assert read_add_fast(body, max_batch=10, allowed_lists=("ncii",)) is None
    refused = strict(body, 10, ("ncii",))
    assert isinstance(refused, ProtocolError) and refused.path == "items[0].list"


def test_what_the_cli_writes_is_read_on_the_fast_path() -> None:
    prefix, suffix = item_affixes({"tier": "helpline_verified", "labels": ["b", "a"],
                                   "expires": 2_000_000_000_000}, "ncii")
    entries = [ListEntry(kind, f"{i:0{width}x}", "")
               for i in range(3) for kind, width in (("pdq", 64), ("md5", 32))]
    body = encode_request(entries, prefix, suffix,
                          {"scope": "peers", "jurisdictions": ["DE"]})
    json.loads(body)
    fast = read_add_fast(body, max_batch=10, allowed_lists=("ncii",))
    assert fast is not None and len(fast.items) == 6
    assert fast == strict(body, 10, ("ncii",))
    assert fast.items[0].labels == ("b", "a") and fast.dist.jurisdictions == ("DE",)


def test_items_must_follow_each_other_comma_by_comma_to_the_end() -> None:
    """The reader takes the items in one pass: anything between, before or after two items
    (other than one comma) sends the body to the strict parse, which refuses it (or, for
    JSON's whitespace, reads the same items)."""
    prefix, suffix = item_affixes({"tier": "victim_submitted"}, "ncii")
    one = f'{prefix}{{"type":"pdq","value":"{"ab" * 32}"}}{suffix}'
    two = f'{prefix}{{"type":"pdq","value":"{"cd" * 32}"}}{suffix}'
    good = f'{{"items":[{one},{two}]}}'.encode()
    fast = read_add_fast(good, max_batch=10, allowed_lists=("ncii",))
    assert fast is not None and len(fast.items) == 2
    spaced = f'{{"items":[{one}, {two}]}}'.encode()
    assert read_add_fast(spaced, max_batch=10, allowed_lists=("ncii",)) is None
    assert strict(spaced, 10, ("ncii",)) == fast
    for region in (f"{one}{two}", f"{one},,{two}", f"{one},x{two}",
                   f"{one},{two},", f",{one},{two}", f"{one},{two}x", f"x{one},{two}",
                   f"{one},{{}},{two}", ""):
        body = f'{{"items":[{region}]}}'.encode()
        assert read_add_fast(body, max_batch=10, allowed_lists=("ncii",)) is None, region
        assert isinstance(strict(body, 10, ("ncii",)), ProtocolError), region


def test_the_cli_batches_by_count_and_by_the_node_body_limit() -> None:
    """``add --from`` sends ``max_add_items`` items a request, fewer where the body would
    pass ``max_body_bytes``: every body it writes fits, and no batch could take one more."""
    prefix, suffix = item_affixes({"tier": "victim_submitted", "labels": ["x"]}, "ncii")
    dist = {"scope": "all"}
    entries = [ListEntry("pdq" if i % 3 else "md5", f"{i:064x}" if i % 3 else f"{i:032x}", "")
               for i in range(5000)]
    for size, limit in ((10_000, 100_000), (700, 1_048_576), (10_000, 4_000)):
        budget = limit - _envelope_bytes(dist)
        batches = list(_batches(iter(entries), size, budget,
                                len(prefix.encode()) + len(suffix.encode())))
        assert [e for b in batches for e in b] == entries
        for batch, following in zip(batches, [*batches[1:], None], strict=True):
            body = encode_request(batch, prefix, suffix, dist)
            assert len(batch) <= size and len(body) <= limit
            if following is not None and len(batch) < size:
                grown = encode_request([*batch, following[0]], prefix, suffix, dist)
                assert len(grown) > limit
