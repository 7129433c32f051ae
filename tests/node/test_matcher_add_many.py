"""``Matcher.add_many`` (a sync page at once) ends in the same index as ``add`` one by one."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from hashmesh.node.matching.matcher import BULK_BATCH, BULK_QUIET_SECONDS, Matcher
from tests.node.test_matcher import brute


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


def test_a_bulk_load_defers_merges_and_answers_as_a_fresh_bulk_load_before_and_after_settling(
) -> None:
    """Batches of BULK_BATCH rows or more let the delta grow past ``merge_at`` (queries scan
    it meanwhile); ``settle`` merges it once the batches stop. Answers throughout are those
    of an index bulk-loaded from scratch with the same content, and of brute force."""
    rng = random.Random(15)
    base = [pdq(rng) for _ in range(64 * 1024)]
    stored = dict(enumerate(base, start=1))
    matcher = Matcher()
    matcher.bulk_load("pdq", list(stored), base)
    index = matcher._indexes["pdq"]
    assert index.merge_at() < index.bulk_merge_at()
    added: list[str] = []
    entry_id = 10**6
    while len(added) + 1000 < index.bulk_merge_at():
        batch = [near(rng.choice(base), rng.randrange(0, 40), rng) for _ in range(1000)]
        ids = list(range(entry_id, entry_id + len(batch)))
        matcher.add_many("pdq", ids, batch)
        stored.update(zip(ids, batch, strict=True))
        added += batch
        entry_id += len(batch)
    for gone in (1, 2, entry_id - 1):
        matcher.remove(gone)
        del stored[gone]
    main = index._snap.main
    assert main is not None
    assert index._snap.n_rows - main.n == len(added) > index.merge_at()  # not merged yet
    assert matcher.unsettled() and matcher.settle()  # still running: nothing merged

    fresh = Matcher()
    fresh.bulk_load("pdq", list(stored), list(stored.values()))
    queries = [near(v, rng.randrange(0, 32), rng) for v in rng.sample(added, 6)]
    queries += [base[0], base[2], near(base[5], 9, rng)]
    expected = [fresh.query("pdq", q, 31) for q in queries]
    assert [matcher.query("pdq", q, 31) for q in queries] == expected
    for query, answer in zip(queries[:4], expected[:4], strict=True):
        assert answer == sorted(brute(stored, query, 31), key=lambda t: (t[1], t[0]))
    assert any(answer for answer in expected)

    time.sleep(BULK_QUIET_SECONDS)
    assert not matcher.settle()
    main = index._snap.main
    assert main is not None and index._snap.n_rows - main.n == 0 and not matcher.unsettled()
    assert [matcher.query("pdq", q, 31) for q in queries] == expected
    assert matcher.count("pdq") == len(stored)


def test_small_batches_are_merged_at_merge_at_as_before() -> None:
    rng = random.Random(16)
    base = [pdq(rng) for _ in range(64 * 1024)]
    matcher = Matcher()
    matcher.bulk_load("pdq", range(1, len(base) + 1), base)
    index = matcher._indexes["pdq"]
    entry_id = 10**6
    for _ in range(index.merge_at() // (BULK_BATCH - 1) + 1):
        matcher.add_many("pdq", range(entry_id, entry_id + BULK_BATCH - 1),
                         [pdq(rng) for _ in range(BULK_BATCH - 1)])
        entry_id += BULK_BATCH - 1
    main = index._snap.main
    assert main is not None and index._snap.n_rows - main.n < index.merge_at()
    assert not matcher.unsettled()


def test_the_merge_kernel_inserts_rows_where_np_insert_does() -> None:
    """A merge writes each chunk's rows with the delta's rows inserted in one compiled pass
    (``hamming_kernels.insert_sorted``); it must place them as ``np.insert`` does, at the
    start, the end, side by side and with nothing to insert."""
    from hashmesh.node.matching.hamming_kernels import insert_sorted

    rng = np.random.default_rng(5)
    for size, inserts in ((0, 3), (10, 0), (1000, 1), (1000, 400), (50, 50)):
        old = rng.integers(0, 2**32, size, dtype=np.uint32)
        before = np.sort(rng.integers(0, size + 1, inserts))  # np.insert's positions
        new = rng.integers(0, 2**32, inserts, dtype=np.uint32)
        out = np.empty(size + inserts, dtype=np.uint32)
        insert_sorted(old, before + np.arange(inserts), new, out)
        assert np.array_equal(out, np.insert(old, before, new))
