"""References, PINs and the node secret: what a person types, and what the node keeps."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hashmesh.node.cases.credentials import (
    CROCKFORD,
    SECRET_FILE,
    NodeSecret,
    PinHasher,
    new_pin,
    new_reference,
    normalise_pin,
    normalise_reference,
)
from hashmesh.node.cases.errors import CaseError


def test_a_reference_is_four_groups_of_crockford_symbols_and_unpredictable() -> None:
    references = {new_reference() for _ in range(2000)}
    assert len(references) == 2000
    for reference in list(references)[:50]:
        groups = reference.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert all(c in CROCKFORD for c in "".join(groups))
    # every symbol turns up: the choice is over the whole alphabet
    assert set("".join(references).replace("-", "")) == set(CROCKFORD)


def test_what_a_person_types_is_forgiven_within_reason() -> None:
    reference = "7KQ2-M9XD-4HT0-B31P"
    assert normalise_reference(reference) == reference
    assert normalise_reference(" 7kq2 m9xd 4hto b3iP ") == reference  # case, spaces, O, I
    assert normalise_reference("7KQ2M9XD4HT0B3LP") == reference       # no hyphens, L
    assert normalise_reference("7KQ2-M9XD-4HT0-B31") is None          # one short
    assert normalise_reference("7KQ2-M9XD-4HT0-B31U") is None         # U is not a symbol
    assert normalise_reference("7" * 10_000) is None


def test_a_pin_is_eight_digits() -> None:
    pins = [new_pin() for _ in range(200)]
    assert all(len(p) == 8 and p.isdigit() for p in pins)
    assert len(set(pins)) > 190
    assert normalise_pin("1234 5678") == "12345678"
    assert normalise_pin("1234567") is None
    assert normalise_pin("１２３４５６７８") is None  # full-width digits are not ASCII


def test_the_node_secret_is_made_once_with_mode_0600_and_keys_the_macs(tmp_path: Path) -> None:
    first = NodeSecret.load_or_create(tmp_path / "data")
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = NodeSecret.load_or_create(tmp_path / "data")
    assert first.mac("reference", "X") == again.mac("reference", "X")
    assert first.mac("reference", "X") != first.mac("client", "X")
    other = NodeSecret.load_or_create(tmp_path / "elsewhere")
    assert other.mac("reference", "X") != first.mac("reference", "X")


def test_a_damaged_secret_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(CaseError, match=SECRET_FILE):
        NodeSecret.load_or_create(tmp_path)


def test_pins_are_kept_as_argon2id_hashes() -> None:
    hasher = PinHasher()
    stored = hasher.hash("12345678")
    assert stored.startswith("$argon2id$") and "12345678" not in stored
    assert hasher.verify(stored, "12345678")
    assert not hasher.verify(stored, "12345679")
    assert not hasher.verify(None, "12345678")  # the decoy never opens
    assert not hasher.verify("not a hash", "12345678")
