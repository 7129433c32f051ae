"""A run of items read as one column of values stands for exactly the items it was read from.

``read_item_run`` is the bulk add's reader (``node/api/requests.read_add_fast``): it must
accept only regions that are the canonical text of their items, read them as
``read_canonical_items`` (and so ``Item.from_json``) reads them, and an ``add`` body of a run
must encode to the bytes ``canonical.encode`` writes for the same items.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol import canonical, encoding
from hashmesh.protocol.item_runs import ItemRun, read_item_run
from hashmesh.protocol.records import AddBody, HashEntry, Item, read_canonical_items
from hashmesh.protocol.signing import sign_record
from tests.protocol.builders import PROPERTY, SIGNER
from tests.protocol.test_fastpath import hash_entries, items, salts

HEX_TYPES = ["ahash", "dhash", "md5", "pdq", "phash", "sha256", "whash"]


@st.composite
def runs(draw: st.DrawFn) -> list[Item]:
    """Items of one shape (one hash of one hex type, no quality) differing in their value."""
    template = draw(items())
    kind = draw(st.sampled_from(HEX_TYPES))
    entries = draw(st.lists(hash_entries(kind), min_size=2, max_size=12))
    return [dataclasses.replace(template, hashes=(HashEntry(kind, e.value),)) for e in entries]


def region_of(items_: list[Item]) -> str:
    return ",".join(canonical.encode(item.to_json()).decode() for item in items_)


@PROPERTY
@given(runs())
def test_one_item_is_no_run_and_is_read_item_by_item(items_: list[Item]) -> None:
    """Nor is a region whose first item has no like after it: the item reader reads it
    once (no parse of every item twice)."""
    assert read_item_run(region_of(items_[:1])) is None
    assert read_item_run(region_of(items_[:1]) + "," + region_of(items_)) is not None


@PROPERTY
@given(runs())
def test_a_run_reads_what_the_item_reader_reads(items_: list[Item]) -> None:
    region = region_of(items_)
    run = read_item_run(region)
    assert isinstance(run, ItemRun)
    assert list(run) == items_ == list(read_canonical_items(region) or ())
    assert run == items_ and items_ == run and run == tuple(items_)
    assert hash(run) == hash(tuple(items_))
    assert run.text() == region and run.item_size == len(region_of(items_[:1]))
    assert run[1:3] == items_[1:3] and run[-1] == items_[-1]


@PROPERTY
@given(runs(), salts)
def test_an_add_body_of_a_run_encodes_and_signs_as_one_of_its_items(
        items_: list[Item], salt: str) -> None:
    run = read_item_run(region_of(items_))
    assert run is not None
    body = AddBody(run, salt)
    expected = canonical.encode(AddBody(tuple(items_), salt).to_json())
    assert encoding.add_body_bytes(body) == expected
    signed = sign_record(signer=SIGNER, origin=SIGNER.id, seq=1, prev=None, ts=1, body=body)
    reference = sign_record(signer=SIGNER, origin=SIGNER.id, seq=1, prev=None, ts=1,
                            body=AddBody(tuple(items_), salt))
    assert signed.raw == reference.raw and signed.id == reference.id


@PROPERTY
@given(st.lists(items(), min_size=1, max_size=4))
def test_items_of_other_shapes_are_not_read_as_a_run_unless_they_are_one(
        items_: list[Item]) -> None:
    run = read_item_run(region_of(items_))
    if run is not None:
        assert list(run) == items_


@PROPERTY
@given(runs(), st.integers(0, 100_000), st.data())
def test_a_run_never_accepts_a_changed_region_that_reads_otherwise(
        items_: list[Item], position: int, data: st.DataObject) -> None:
    region = region_of(items_)
    at = position % len(region)
    change = data.draw(st.sampled_from(["", "A", "f", "0", '"', ",", "]", "}", "\\", " ",
                                        '"x":1,', "g"]))
    mutated = region[:at] + change + region[at + 1:]
    run = read_item_run(mutated)
    if run is not None:
        assert list(run) == list(read_canonical_items(mutated) or ())
        assert run.text() == mutated


def test_uppercase_values_whitespace_and_mixed_types_are_declined() -> None:
    one = region_of([Item((HashEntry("pdq", "ab" * 32),), "ncii")])
    two = region_of([Item((HashEntry("pdq", "cd" * 32),), "ncii")])
    assert read_item_run(f"{one},{two}") is not None
    assert read_item_run(f"{one},{two.replace('cd', 'CD')}") is None
    assert read_item_run(f"{one}, {two}") is None
    assert read_item_run(f"{one},{two[:-1]} }}") is None
    md5 = region_of([Item((HashEntry("md5", "ab" * 16),), "ncii")])
    assert read_item_run(f"{one},{md5}") is None
    spaced = two.replace("cd" * 32, "cd" * 31 + "c ")
    assert read_item_run(f"{one},{spaced}") is None
    assert read_item_run("") is None and read_item_run(one + ",") is None
