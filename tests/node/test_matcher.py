"""Matcher: exact recall against a brute-force reference, live adds and removes, exact types.

Indexes here are built past MIN_INDEXED_ROWS so the multi-index (CSR) path is exercised, not
only the brute-force delta scan; a few tests force merges of the delta into the CSR arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh.node.matching.matcher import MIN_INDEXED_ROWS, HammingIndex, Matcher, choose_layout
from hashmesh.protocol.errors import UnknownHashTypeError

PDQ_MAX = 63


def random_hex(rng: np.random.Generator, n: int, bits: int) -> list[str]:
    raw = rng.integers(0, 256, n * bits // 8, dtype=np.uint8).tobytes().hex()
    width = bits // 4
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def flip_bits(rng: np.random.Generator, value: str, d: int) -> str:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(value), dtype=np.uint8))
    bits[rng.choice(len(bits), d, replace=False)] ^= 1
    return np.packbits(bits).tobytes().hex()


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def brute(stored: dict[int, str], query: str, threshold: int) -> list[tuple[int, int]]:
    hits = [(e, hamming(v, query)) for e, v in stored.items()]
    return sorted((e, d) for e, d in hits if d <= threshold)


def by_distance(result: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(result, key=lambda t: (t[1], t[0]))


@pytest.fixture(scope="module", params=[("pdq", 256), ("phash", 64)])
def planted(request: pytest.FixtureRequest) -> tuple[str, int, Matcher, dict[int, str], str]:
    """An index of random hashes plus neighbours of one centre at every distance 0..bits/4."""
    hash_type, bits = request.param
    rng = np.random.default_rng(7)
    values = random_hex(rng, 3 * MIN_INDEXED_ROWS, bits)
    stored = dict(enumerate(values, start=1))
    centre = values[0]
    next_id = len(stored) + 1
    for d in range(bits // 4 + 2):
        stored[next_id] = flip_bits(rng, centre, d)
        next_id += 1
    matcher = Matcher()
    ids = list(stored)
    matcher.bulk_load(hash_type, ids, [stored[e] for e in ids])
    return hash_type, bits, matcher, stored, centre


@pytest.mark.parametrize("threshold", [0, 1, 7, 15, 16, 31, 32, 47, PDQ_MAX])
def test_query_finds_exactly_the_brute_force_matches(
    planted: tuple[str, int, Matcher, dict[int, str], str], threshold: int
) -> None:
    hash_type, bits, matcher, stored, centre = planted
    threshold = min(threshold, bits // 4)
    rng = np.random.default_rng(threshold)
    queries = [centre, flip_bits(rng, centre, 3), random_hex(rng, 1, bits)[0]]
    for query in queries:
        expected = by_distance(brute(stored, query, threshold))
        assert matcher.query(hash_type, query, threshold) == expected
    assert matcher.query_many(hash_type, queries, threshold) == [
        by_distance(brute(stored, q, threshold)) for q in queries
    ]


def test_planted_neighbours_match_up_to_the_threshold_and_not_beyond(
    planted: tuple[str, int, Matcher, dict[int, str], str],
) -> None:
    hash_type, bits, matcher, stored, centre = planted
    threshold = 31 if bits == 256 else 10
    distances = {d for _, d in matcher.query(hash_type, centre, threshold)}
    assert distances == set(range(threshold + 1))
    assert all(d <= threshold for _, d in matcher.query(hash_type, centre, threshold))


def test_results_are_sorted_by_distance_then_id() -> None:
    matcher = Matcher()
    value = "0" * 64
    near = "1" + "0" * 63  # distance 1
    for entry_id, v in ((9, near), (5, value), (7, value), (3, near)):
        matcher.add(entry_id, "pdq", v)
    assert matcher.query("pdq", value, 31) == [(5, 0), (7, 0), (3, 1), (9, 1)]


def test_remove_stops_a_match_at_once_in_the_indexed_part() -> None:
    rng = np.random.default_rng(1)
    values = random_hex(rng, 2 * MIN_INDEXED_ROWS, 256)
    matcher = Matcher()
    matcher.bulk_load("pdq", np.arange(len(values)), values)
    assert (10, 0) in matcher.query("pdq", values[10], 0)
    matcher.remove(10)
    assert matcher.query("pdq", values[10], 31) == []
    assert matcher.query_many("pdq", [values[10]], 31) == [[]]
    assert matcher.count("pdq") == len(values) - 1


def test_remove_of_an_unknown_id_is_a_no_op() -> None:
    matcher = Matcher()
    matcher.add(1, "pdq", "f" * 64)
    matcher.remove(12345)
    assert matcher.count() == 1


def test_re_add_after_remove_matches_the_new_value_only() -> None:
    rng = np.random.default_rng(2)
    values = random_hex(rng, 2 * MIN_INDEXED_ROWS, 256)
    matcher = Matcher()
    matcher.bulk_load("pdq", np.arange(len(values)), values)
    matcher.remove(3)
    matcher.add(3, "pdq", values[4])
    assert matcher.query("pdq", values[3], 0) == []
    assert matcher.query("pdq", values[4], 0) == [(3, 0), (4, 0)]
    matcher.remove(3)  # the re-added row, not the old dead one
    assert matcher.query("pdq", values[4], 0) == [(4, 0)]


def test_adding_an_existing_id_replaces_its_value_even_across_types() -> None:
    matcher = Matcher()
    matcher.add(1, "pdq", "0" * 64)
    matcher.add(1, "phash", "0" * 16)
    assert matcher.query("pdq", "0" * 64, 31) == []
    assert matcher.query("phash", "0" * 16, 0) == [(1, 0)]
    assert matcher.count() == 1


def test_bulk_load_then_live_adds_through_several_merges() -> None:
    rng = np.random.default_rng(3)
    base = random_hex(rng, MIN_INDEXED_ROWS * 2, 256)
    matcher = Matcher()
    matcher.bulk_load("pdq", np.arange(1, len(base) + 1), base)
    stored = dict(enumerate(base, start=1))
    index = matcher._indexes["pdq"]
    extra = random_hex(rng, 3 * index.merge_at() + 17, 256)
    for i, v in enumerate(extra):
        entry_id = 100_000 + i
        matcher.add(entry_id, "pdq", v)
        stored[entry_id] = v
        if i % 500 == 0:
            matcher.remove(1 + i)
            del stored[1 + i]
    main = index._snap.main
    assert main is not None and main.n > len(base)  # the delta was merged, not just scanned
    for q in [extra[0], extra[-1], flip_bits(rng, extra[5], 20), base[-1]]:
        assert matcher.query("pdq", q, 31) == by_distance(brute(stored, q, 31))
    assert matcher.count("pdq") == len(stored)


def test_bulk_load_with_repeated_and_existing_ids_keeps_the_last_value() -> None:
    matcher = Matcher()
    matcher.add(1, "md5", "a" * 32)
    matcher.bulk_load("pdq", [1, 2, 2], ["0" * 64, "1" * 64, "2" * 64])
    assert matcher.query("md5", "a" * 32, 0) == []
    assert matcher.query("pdq", "2" * 64, 0) == [(2, 0)]
    assert matcher.query("pdq", "1" * 64, 0) == []
    assert matcher.count() == 2


@pytest.mark.parametrize(
    ("hash_type", "value", "other"),
    [
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427f"),
        ("sha256", "ab" * 32, "ab" * 31 + "ac"),
        ("photodna", "AAEC" * 10, "AAED" * 10),
    ],
)
def test_exact_types_match_equal_values_only_whatever_the_threshold(
    hash_type: str, value: str, other: str
) -> None:
    matcher = Matcher()
    matcher.add(1, hash_type, value)
    matcher.add(2, hash_type, other)
    assert matcher.query(hash_type, value, 31) == [(1, 0)]
    matcher.remove(1)
    assert matcher.query(hash_type, value, 0) == []


def test_exact_type_lookups_in_the_indexed_part() -> None:
    rng = np.random.default_rng(4)
    values = random_hex(rng, 2 * MIN_INDEXED_ROWS, 128)
    matcher = Matcher()
    matcher.bulk_load("md5", np.arange(len(values)), values)
    matcher.add(10**9, "md5", values[5])
    assert matcher.query("md5", values[5], 0) == [(5, 0), (10**9, 0)]
    assert matcher.query_many("md5", [values[6], "0" * 32], 0) == [[(6, 0)], []]
    matcher.remove(5)
    assert matcher.query("md5", values[5], 0) == [(10**9, 0)]


def test_unknown_hash_type_raises_value_error_naming_it() -> None:
    matcher = Matcher()
    with pytest.raises(ValueError, match="'sha1'") as info:
        matcher.query("sha1", "00", 0)
    assert isinstance(info.value, UnknownHashTypeError)
    with pytest.raises(ValueError, match="'nope'"):
        matcher.add(1, "nope", "00")


def test_a_value_of_the_wrong_length_is_rejected_with_its_position() -> None:
    matcher = Matcher()
    with pytest.raises(ValueError, match="expected 64 hex characters"):
        matcher.add(1, "pdq", "0" * 63)
    with pytest.raises(ValueError, match=r"values\[1\]"):
        matcher.bulk_load("pdq", [1, 2], ["0" * 64, "0" * 62])


def test_negative_threshold_is_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Matcher().query("pdq", "0" * 64, -1)


def test_count_and_memory_follow_the_content() -> None:
    matcher = Matcher()
    assert matcher.count() == 0
    matcher.bulk_load("pdq", range(MIN_INDEXED_ROWS), ["0" * 64] * MIN_INDEXED_ROWS)
    matcher.add(-1, "phash", "0" * 16)
    assert matcher.count("pdq") == MIN_INDEXED_ROWS
    assert matcher.count() == MIN_INDEXED_ROWS + 1
    assert matcher.memory_bytes() >= MIN_INDEXED_ROWS * 32


def test_layout_widths_follow_log2_n_and_exact_types_use_one_chunk() -> None:
    small = choose_layout(256, 100_000, 31, exact=False)
    large = choose_layout(256, 10_000_000, 31, exact=False)
    assert max(w for _, w in small.chunks) < max(w for _, w in large.chunks)
    assert len(choose_layout(128, 1_000_000, 0, exact=True).chunks) == 1


# ---- property test: any sequence of adds and removes agrees with a brute-force model

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 60), st.integers(0, 15), st.integers(0, 12)),
        st.tuples(st.just("remove"), st.integers(0, 60), st.just(0), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, threshold=st.integers(0, 16))
def test_any_add_remove_sequence_agrees_with_a_brute_force_model(
    ops: list[tuple[str, int, int, int]], threshold: int
) -> None:
    rng = np.random.default_rng(0)
    centres = random_hex(rng, 16, 64)
    # A bulk-loaded CSR part plus live changes: removes hit both the CSR part and the delta.
    index = HammingIndex(64, 10)
    model: dict[int, str] = {}
    base = random_hex(np.random.default_rng(1), MIN_INDEXED_ROWS, 64)
    index.bulk_load(np.arange(1000, 1000 + len(base)), bytes.fromhex("".join(base)))
    model.update(zip(range(1000, 1000 + len(base)), base, strict=True))
    for op, entry_id, centre, flips in ops:
        if op == "add":
            value = flip_bits(np.random.default_rng(entry_id + flips), centres[centre], flips)
            index.add(entry_id, bytes.fromhex(value))
            model[entry_id] = value
        else:
            assert index.remove(entry_id) == (entry_id in model)
            model.pop(entry_id, None)
    assert len(index) == len(model)
    for q in centres[:4]:
        ids, dist = index.query(bytes.fromhex(q), threshold)
        assert list(zip(ids.tolist(), dist.tolist(), strict=True)) == by_distance(
            brute(model, q, threshold)
        )


def test_merge_and_compaction_keep_results_exact() -> None:
    rng = np.random.default_rng(5)
    index = HammingIndex(64, 10)
    model: dict[int, str] = {}
    values = random_hex(rng, 4 * MIN_INDEXED_ROWS, 64)
    for i, v in enumerate(values):  # empty -> brute force -> first build -> merges -> rebuilds
        index.add(i, bytes.fromhex(v))
        model[i] = v
    for i in range(0, len(values), 2):  # half dead: the next merge compacts
        index.remove(i)
        del model[i]
    for i, v in enumerate(random_hex(rng, index.merge_at() + 1, 64)):
        index.add(10**6 + i, bytes.fromhex(v))
        model[10**6 + i] = v
    assert index._dead_rows == 0  # compacted
    for q in values[1:6] + [flip_bits(rng, values[3], 6)]:
        ids, dist = index.query(bytes.fromhex(q), 12)
        assert list(zip(ids.tolist(), dist.tolist(), strict=True)) == by_distance(
            brute(model, q, 12)
        )


def test_bulk_load_packed_answers_as_bulk_load_and_checks_the_length() -> None:
    rng = np.random.default_rng(3)
    values = [bytes(v).hex() for v in rng.integers(0, 256, (MIN_INDEXED_ROWS * 2, 32),
                                                      dtype=np.uint8)]
    ids = list(range(1, len(values) + 1))
    from_hex, packed = Matcher(), Matcher()
    from_hex.bulk_load("pdq", ids, values)
    packed.bulk_load_packed("pdq", ids, bytearray(b"".join(bytes.fromhex(v) for v in values)))
    for value in values[:50]:
        assert packed.query("pdq", value, 31) == from_hex.query("pdq", value, 31)
    with pytest.raises(ValueError, match="2 entry ids but 96 bytes of 32-byte values"):
        Matcher().bulk_load_packed("pdq", [1, 2], bytes(96))
