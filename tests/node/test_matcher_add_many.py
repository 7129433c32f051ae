"""``Matcher.add_many`` (a sync page at once) ends in the same index as ``add`` one by one."""

from __future__ import annotations

import random

import pytest

from hashmesh.node.matching.matcher import Matcher


def pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def near(value: str, bits: int, rng: random.Random) -> str:
    number = int(value, 16)
    for bit in rng.sample(range(256), bits):
        number ^= 1 << bit
    return f"{number:064x}"


@pytest.mark.parametrize("pages", [[10], [3000, 5000], [5000, 1, 20000, 700]])
def test_add_many_answers_queries_as_adding_one_by_one(pages: list[int]) -> None:
    """Pages cross the brute-force limit (4096 rows), merges and rebuilds of the index."""
    rng = random.Random(len(pages))
    one_by_one, bulk = Matcher(), Matcher()
    entry_id = 1
    stored: list[str] = []
    for size in pages:
        values = [pdq(rng) for _ in range(size)]
        ids = list(range(entry_id, entry_id + size))
        for i, v in zip(ids, values, strict=True):
            one_by_one.add(i, "pdq", v)
        bulk.add_many("pdq", ids, values)
        stored += values
        entry_id += size
    assert bulk.count("pdq") == one_by_one.count("pdq") == len(stored)
    for value in rng.sample(stored, min(50, len(stored))):
        query = near(value, rng.randrange(0, 32), rng)
        assert bulk.query("pdq", query, 31) == one_by_one.query("pdq", query, 31)
        assert bulk.query("pdq", query, 31)


def test_add_many_replaces_ids_already_present_even_under_another_type() -> None:
    matcher = Matcher()
    rng = random.Random(1)
    old, new = pdq(rng), pdq(rng)
    matcher.add(1, "pdq", old)
    matcher.add(2, "md5", "a" * 32)
    matcher.add_many("pdq", [1, 2, 2], [new, old, new])  # the last value of an id wins

    assert matcher.query("pdq", old, 0) == []
    assert matcher.query("pdq", new, 0) == [(1, 0), (2, 0)]
    assert matcher.query("md5", "a" * 32, 0) == []
    assert matcher.count() == 2


def test_add_many_of_a_revoked_then_removed_page_leaves_nothing() -> None:
    rng = random.Random(2)
    values = [pdq(rng) for _ in range(5000)]
    matcher = Matcher()
    matcher.add_many("pdq", range(1, 5001), values)
    for entry_id in range(1, 5001, 2):
        matcher.remove(entry_id)

    assert matcher.count("pdq") == 2500
    assert matcher.query("pdq", values[0], 0) == []
    assert matcher.query("pdq", values[1], 0) == [(2, 0)]


def test_add_many_refuses_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="2 entry ids but 1 values"):
        Matcher().add_many("pdq", [1, 2], ["0" * 64])
