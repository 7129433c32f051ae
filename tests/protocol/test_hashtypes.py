"""Contract tests shared by every hash type (one mixin, one subclass per type), plus type specifics.

Modelled on python-threatexchange's ``SignalTypeAutoTest``: a new hash type gets the whole
contract by subclassing ``HashTypeContract`` and listing its own good and bad values.
"""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashmesh.protocol.errors import HashValueError, UnknownHashTypeError
from hashmesh.protocol.hashtypes import (
    HASH_TYPES,
    AhashType,
    DhashType,
    HashType,
    Md5Type,
    PdqType,
    PhashType,
    PhotoDnaType,
    Sha256Type,
    WhashType,
    get_hash_type,
)

PATH = "items[2].hashes[0].value"


class HashTypeContract:
    """What every registered hash type promises. Subclasses fill in the class variables."""

    hash_type: ClassVar[HashType]
    # (input, normalised) pairs beyond examples(): e.g. uppercase hex that must be lowercased.
    normalising: ClassVar[list[tuple[str, str]]] = []
    # (bad value, fragment the error message must contain)
    bad: ClassVar[list[tuple[object, str]]]

    def test_is_registered_under_its_name(self) -> None:
        assert HASH_TYPES[self.hash_type.name] is self.hash_type
        assert get_hash_type(self.hash_type.name) is self.hash_type

    def test_has_at_least_two_distinct_examples(self) -> None:
        examples = self.hash_type.examples()
        assert len(set(examples)) >= 2

    def test_examples_validate_to_themselves(self) -> None:
        for example in self.hash_type.examples():
            assert self.hash_type.validate(example) == example

    def test_normalisation_is_idempotent(self) -> None:
        for raw, normalised in self.normalising:
            once = self.hash_type.validate(raw)
            assert once == normalised
            assert self.hash_type.validate(once) == once

    def test_distance_to_itself_is_zero(self) -> None:
        for example in self.hash_type.examples():
            assert self.hash_type.distance(example, example) == 0

    def test_distance_is_symmetric_and_positive_between_different_examples(self) -> None:
        examples = self.hash_type.examples()
        for a in examples:
            for b in examples:
                if a != b:
                    d = self.hash_type.distance(a, b)
                    assert d == self.hash_type.distance(b, a)
                    assert d > 0

    def test_distance_ignores_case_differences(self) -> None:
        for raw, normalised in self.normalising:
            assert self.hash_type.distance(raw, normalised) == 0

    def test_thresholds_are_consistent(self) -> None:
        t = self.hash_type
        assert 0 <= t.default_threshold <= t.max_threshold
        if t.exact:
            assert t.bits is None and t.max_threshold == 0
        else:
            assert t.bits is not None and t.max_threshold < t.bits // 2

    def test_to_bytes_round_trips_examples(self) -> None:
        for example in self.hash_type.examples():
            raw = self.hash_type.to_bytes(example)
            if self.hash_type.bits is not None:
                assert len(raw) * 8 == self.hash_type.bits
                assert raw.hex() == example

    def test_bad_values_raise_hash_value_error_located_by_path(self) -> None:
        for value, fragment in self.bad:
            with pytest.raises(HashValueError) as info:
                self.hash_type.validate(value, PATH)
            error = info.value
            assert error.code == "BAD_HASH_VALUE"
            assert error.path == PATH
            assert str(error).startswith(f"{PATH}: invalid {self.hash_type.name} hash (")
            assert fragment in str(error), (value, str(error))

    def test_distance_rejects_invalid_values(self) -> None:
        good = self.hash_type.examples()[0]
        value, _ = self.bad[0]
        with pytest.raises(HashValueError):
            self.hash_type.distance(good, value)  # type: ignore[arg-type]


def _hex_bad_cases(name: str, n: int) -> list[tuple[object, str]]:
    """The malformed inputs every hex type must reject, with the message each must give."""
    return [
        ("a" * (n - 1), f"expected {n} hex characters, got {n - 1}"),
        ("a" * (n + 1), f"expected {n} hex characters, got {n + 1}"),
        ("", f"expected {n} hex characters, got 0"),
        ("a" * (n - 1) + "g", f"found 'g' at index {n - 1}"),
        (" " + "a" * (n - 1), "found ' ' at index 0"),
        ("a" * (n - 1) + "\n", "found '\\n' at index"),
        ("0x" + "a" * (n - 2), "found 'x' at index 1"),
        ("a" * (n - 2) + "_a", "found '_' at index"),
        ("\u0661" * n, "found '\u0661' at index 0"),  # Arabic-Indic digit one: not ASCII hex
        (None, f"expected a string of {n} hex characters, got NoneType"),
        (123, "got int"),
        (b"a" * n, "got bytes"),
    ]


class TestPdq(HashTypeContract):
    hash_type = HASH_TYPES["pdq"]
    normalising = [("F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22",
                    "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22")]
    bad = _hex_bad_cases("pdq", 64)

    def test_message_matches_the_documented_form(self) -> None:
        with pytest.raises(HashValueError) as info:
            self.hash_type.validate("a" * 63, PATH)
        assert str(info.value) == f"{PATH}: invalid pdq hash (expected 64 hex characters, got 63)"

    def test_threshold_is_threatexchange_confident_match(self) -> None:
        assert (PdqType.default_threshold, PdqType.max_threshold, PdqType.bits) == (31, 63, 256)

    def test_known_distance_between_bridge_mods_examples(self) -> None:
        a, b = self.hash_type.examples()[:2]
        # They differ in two hex digits: 2->a (1 bit) and e->6 (1 bit).
        assert self.hash_type.distance(a, b) == 2


class TestPhash(HashTypeContract):
    hash_type = HASH_TYPES["phash"]
    normalising = [("C2924C5532BDDFC8", "c2924c5532bddfc8")]
    bad = _hex_bad_cases("phash", 16)


class TestDhash(HashTypeContract):
    hash_type = HASH_TYPES["dhash"]
    normalising = [("CD8dD91D897293A7", "cd8dd91d897293a7")]
    bad = _hex_bad_cases("dhash", 16)


class TestAhash(HashTypeContract):
    hash_type = HASH_TYPES["ahash"]
    normalising = [("7F7F7FC744F8D050", "7f7f7fc744f8d050")]
    bad = _hex_bad_cases("ahash", 16)


class TestWhash(HashTypeContract):
    hash_type = HASH_TYPES["whash"]
    normalising = [("7F775FC744F80040", "7f775fc744f80040")]
    bad = _hex_bad_cases("whash", 16)


class TestMd5(HashTypeContract):
    hash_type = HASH_TYPES["md5"]
    normalising = [("D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e")]
    bad = _hex_bad_cases("md5", 32)

    def test_example_is_the_digest_of_empty_bytes(self) -> None:
        assert hashlib.md5(b"").hexdigest() in self.hash_type.examples()

    def test_distance_is_one_for_any_difference(self) -> None:
        a = "d41d8cd98f00b204e9800998ecf8427e"
        assert self.hash_type.distance(a, a[:-1] + "f") == 1
        assert self.hash_type.distance(a, "cab08b36195edb1a1231d2d09fa450e0") == 1


class TestSha256(HashTypeContract):
    hash_type = HASH_TYPES["sha256"]
    normalising = [(hashlib.sha256(b"").hexdigest().upper(), hashlib.sha256(b"").hexdigest())]
    bad = _hex_bad_cases("sha256", 64)

    def test_example_is_the_digest_of_empty_bytes(self) -> None:
        assert hashlib.sha256(b"").hexdigest() in self.hash_type.examples()


class TestPhotoDna(HashTypeContract):
    hash_type = HASH_TYPES["photodna"]
    normalising = []  # base64 is case-sensitive: PhotoDNA values are never rewritten
    bad = [
        ("QUJD-A==", "found '-' at index 4"),  # base64url alphabet is not accepted
        ("QUJDRA", "6 characters (not a multiple of 4)"),  # padding is required
        ("QUJD RA==", "found ' ' at index 4"),
        ("QQ==\n", "found '\\n' at index 4"),
        ("Q===", "at most 2 padding characters, got 3"),
        ("QR==", "not in canonical form"),  # the unused low bits of 'R' are set
        ("QQ==QQ==", "'=' only as padding at the end, found it at index 2"),
        ("", "got an empty string"),
        (base64.b64encode(bytes(1025)).decode(), "expected at most 1024 bytes, got 1025"),
        (base64.b64encode(bytes(2000)).decode(), "expected at most 1024 bytes, got 2668 base64"),
        (b"QQ==", "expected a base64 string, got bytes"),
        (144, "got int"),
    ]

    def test_accepts_the_largest_allowed_value(self) -> None:
        value = base64.b64encode(bytes(1024)).decode()
        assert self.hash_type.validate(value) == value
        assert self.hash_type.to_bytes(value) == bytes(1024)

    def test_to_bytes_decodes_the_opaque_value(self) -> None:
        assert self.hash_type.to_bytes(self.hash_type.examples()[0]) == bytes(range(144))

    def test_is_exact_only(self) -> None:
        assert (PhotoDnaType.exact, PhotoDnaType.bits, PhotoDnaType.max_threshold) == (
            True, None, 0)


def test_every_registered_type_has_a_contract_test() -> None:
    tested = {cls.hash_type.name for cls in HashTypeContract.__subclasses__()}
    assert tested == set(HASH_TYPES)


def test_registry_holds_one_instance_of_each_class() -> None:
    classes = {PdqType, Md5Type, Sha256Type, PhashType, DhashType, AhashType, WhashType,
               PhotoDnaType}
    assert {type(t) for t in HASH_TYPES.values()} == classes
    assert set(HASH_TYPES) == {"pdq", "md5", "sha256", "phash", "dhash", "ahash", "whash",
                               "photodna"}


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        HASH_TYPES["evil"] = PdqType()  # type: ignore[index]


@pytest.mark.parametrize("name", ["PDQ", "pdq2", "", " pdq", "sha1", "tmk"])
def test_unknown_hash_type_is_named_and_known_types_are_listed(name: str) -> None:
    with pytest.raises(UnknownHashTypeError) as info:
        get_hash_type(name, "items[0].hashes[1].type")
    error = info.value
    assert error.code == "UNKNOWN_HASH_TYPE"
    assert error.path == "items[0].hashes[1].type"
    assert repr(name) in str(error)
    assert "known: ahash, dhash, md5, pdq, phash, photodna, sha256, whash" in str(error)


@pytest.mark.parametrize("name", [None, 3, ["pdq"], b"pdq"])
def test_non_string_hash_type_is_rejected_as_unknown(name: object) -> None:
    with pytest.raises(UnknownHashTypeError, match=f"of type {type(name).__name__}"):
        get_hash_type(name)


def test_unknown_type_message_truncates_huge_names() -> None:
    with pytest.raises(UnknownHashTypeError) as info:
        get_hash_type("x" * 10_000)
    assert len(str(info.value)) < 200


# Hamming distance: properties that must hold for all values, for every perceptual type.
PERCEPTUAL = [t for t in HASH_TYPES.values() if not t.exact]


def _hex_of(bits: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=2**bits - 1).map(lambda n: f"{n:0{bits // 4}x}")


@pytest.mark.parametrize("hash_type", PERCEPTUAL, ids=lambda t: t.name)
@given(data=st.data())
def test_hamming_distance_is_popcount_of_xor(hash_type: HashType, data: st.DataObject) -> None:
    assert hash_type.bits is not None
    a = data.draw(_hex_of(hash_type.bits))
    b = data.draw(_hex_of(hash_type.bits))
    expected = bin(int(a, 16) ^ int(b, 16)).count("1")
    assert hash_type.distance(a, b) == expected
    assert hash_type.distance(a.upper(), b) == expected


@pytest.mark.parametrize("hash_type", PERCEPTUAL, ids=lambda t: t.name)
@given(data=st.data())
def test_hamming_distance_is_a_metric(hash_type: HashType, data: st.DataObject) -> None:
    assert hash_type.bits is not None
    a, b, c = (data.draw(_hex_of(hash_type.bits)) for _ in range(3))
    d = hash_type.distance
    assert d(a, b) == d(b, a)
    assert d(a, c) <= d(a, b) + d(b, c)
    assert (d(a, b) == 0) == (a == b)
    assert 0 <= d(a, b) <= hash_type.bits


@pytest.mark.parametrize("hash_type", PERCEPTUAL, ids=lambda t: t.name)
@given(data=st.data())
def test_flipping_k_bits_gives_distance_k(hash_type: HashType, data: st.DataObject) -> None:
    bits = hash_type.bits
    assert bits is not None
    a = data.draw(_hex_of(bits))
    flips = data.draw(st.sets(st.integers(0, bits - 1), max_size=bits))
    mask = sum(1 << i for i in flips)
    b = f"{int(a, 16) ^ mask:0{bits // 4}x}"
    assert hash_type.distance(a, b) == len(flips)


@given(raw=st.binary(min_size=1, max_size=1024))
def test_photodna_accepts_canonical_base64_of_any_bytes(raw: bytes) -> None:
    photodna = HASH_TYPES["photodna"]
    value = base64.b64encode(raw).decode()
    assert photodna.validate(value) == value
    assert photodna.to_bytes(value) == raw
