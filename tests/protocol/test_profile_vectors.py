"""``protocol/vectors/profiles.json``: the ``profile`` record (SPEC §4.6) as other
implementations must read it, and the rules of its text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hashmesh.protocol import canonical
from hashmesh.protocol.errors import ProtocolError, SchemaError
from hashmesh.protocol.records import ProfileBody, SignedRecord, never_stubbed
from hashmesh.protocol.signing import KeyRing, verify
from tests.protocol.builders import ORIGIN, ROOT
from tests.protocol.generate_profile_vectors import PATH, build, main, render

DOCUMENT: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))


def test_the_committed_vectors_are_what_the_generator_writes() -> None:
    assert PATH.read_text(encoding="utf-8") == render(build())
    assert main(["--check"]) == 0


def test_valid_profiles_verify_chain_and_reencode_exactly() -> None:
    ring = KeyRing(ORIGIN)
    prev = None
    assert ROOT.id == ORIGIN
    for vector in DOCUMENT["records"]:
        record = SignedRecord.from_bytes(vector["record"].encode("utf-8"))
        verify(record, ring)
        assert record.id == vector["id"] and record.head.prev == prev
        assert record.head.type == "profile" and never_stubbed(record.head)
        assert record.body == ProfileBody.from_json(vector["inputs"]["body"], "body")
        assert canonical.encode(vector["inputs"]["body"]).decode() == vector["body_canonical"]
        prev = record.id


@pytest.mark.parametrize("vector", DOCUMENT["invalid"], ids=lambda v: v["name"])
def test_invalid_profiles_are_refused_with_the_recorded_code_and_path(
        vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as raised:
        verify(SignedRecord.from_bytes(vector["record"].encode("utf-8")), KeyRing(ORIGIN))
    assert (raised.value.code, raised.value.path) == (vector["code"], vector["path"])


@pytest.mark.parametrize("text", ["\u0000", "\u0085", "\u061c", "\u200b", "\u2028",
                                  "\u2066", "\ufeff", "\ue000"])
def test_every_forbidden_character_class_is_refused(text: str) -> None:
    with pytest.raises(SchemaError, match="control or formatting"):
        ProfileBody.from_json({"name": f"a{text}b"}, "body")


def test_lengths_count_unicode_scalar_values() -> None:
    assert ProfileBody.from_json({"name": "é" * 64}, "body").name == "é" * 64
    assert ProfileBody.from_json({"name": "😀" * 64}, "body").name == "😀" * 64
    with pytest.raises(SchemaError):
        ProfileBody.from_json({"name": "😀" * 65}, "body")
